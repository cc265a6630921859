/**
 * A cell's agent taken over from a dead host (issue #16), with real processes only: a 3-node
 * `nats-server` cluster on 127.0.0.1 and three `pit daemon`s with their own state directories,
 * cells roots and host ids. The cell lives on host-a; its agent writes into its workspace, the
 * daemon checkpoints the workspace and puts the checkpoint in the cluster's object store; host-a's
 * daemon is SIGKILLed. The agent must run again exactly once on a live host within 2× the lease,
 * under a newer `PIT_EPOCH`, in a cell rebuilt there with the workspace restored; host-a, back,
 * must not start it again.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { provisionCell } from '@pit/cell-spec';
import {
  natsInstalled,
  startNatsCluster,
  tempDir,
  testAgentPath,
  waitFor,
  type TestNatsCluster,
} from '@pit/test-kit';
import {
  cellEvents,
  cleanup,
  killDaemon,
  liveAgents,
  MARKER_FLAG,
  startDaemon,
  trackMarker,
  type DaemonProcess,
} from './harness.js';
import { clusterHostToml, runningOnce, startSampler, stopHosts } from './cluster-hosts.js';

const installed = natsInstalled('the cluster cell takeover test');

/** The host lease T, s. Takeover must land within 2T. */
const LEASE_S = 3;
const AGENT = 'keeper';
const CELL = '5c1e7a2b-3d4f-4a6b-8c9d-0e1f2a3b4c5d';

interface Host {
  id: string;
  base: string;
  configPath: string;
  daemon?: DaemonProcess;
}

/** An agent's live incarnation (pid, PIT_HOST, PIT_EPOCH), when exactly one runs. */
const theIncarnation = (marker: string, agent = AGENT) => runningOnce(marker, agent);

describe.skipIf(!installed)('a cell agent whose host dies, over a 3-node NATS cluster', () => {
  let nats: TestNatsCluster | undefined;
  let hosts: Host[] = [];
  let sampler: ReturnType<typeof startSampler> | undefined;

  afterEach(async (test) => {
    await sampler?.stop();
    sampler = undefined;
    await stopHosts(hosts, test.task.result?.state === 'fail');
    hosts = [];
    await nats?.stop();
    await cleanup();
  }, 60_000);

  /**
   * Three hosts sharing one [agents] table (`agents`: TOML per agent name, after its argv), the
   * cell provisioned on host-a with `cellAgents`, the daemons started and the sampler running.
   */
  const setUp = async (options: {
    checkpointEveryS: number;
    agents: Record<string, string>;
    cellAgents: string[];
    extra?: string[];
  }) => {
    nats = await startNatsCluster(await tempDir('pit-celltake-nats-'), 3);
    const shared = await tempDir('pit-celltake-');
    const marker = `celltake-${process.pid}-${Date.now().toString(36)}`;
    trackMarker(marker);
    // The agent notes each incarnation in its workspace, then runs as the shared test agent.
    const agentScript = join(shared, 'journal-agent.mjs');
    await fs.writeFile(
      agentScript,
      [
        "import { appendFileSync } from 'node:fs';",
        "appendFileSync('journal.txt', `epoch=${process.env.PIT_EPOCH} host=${process.env.PIT_HOST}\\n`);",
        `await import(${JSON.stringify(pathToFileURL(testAgentPath).href)});`,
      ].join('\n'),
    );
    for (const id of ['host-a', 'host-b', 'host-c']) {
      const base = join(shared, id);
      await fs.mkdir(join(base, 'missions'), { recursive: true });
      const lines = [
        ...clusterHostToml({
          servers: nats.urls,
          hostId: id,
          leaseS: LEASE_S,
          checkpointEveryS: options.checkpointEveryS,
        }),
        ...(options.extra ?? []),
        // The same [agents] on every host: an agent is the operator's wherever its cell is.
        ...Object.entries(options.agents).flatMap(([name, toml]) => [
          `[agents.${name}]`,
          `argv = ["${process.execPath}", "${agentScript}", "${MARKER_FLAG}", "${marker}:${name}"]`,
          'startup_grace_s = 10',
          'stop_grace_s = 2',
          toml,
        ]),
      ];
      const configPath = join(base, 'pit.toml');
      await fs.writeFile(configPath, lines.join('\n'), { mode: 0o600 });
      hosts.push({ id, base, configPath });
    }
    const hostA = hosts[0]!;
    const cellA = (
      await provisionCell(join(hostA.base, 'missions'), {
        uuid: CELL,
        mission: 'keep a journal',
        created_by: 'test',
        agents: options.cellAgents.map((name) => ({ name, role: 'scribe' })),
      })
    ).dir;
    for (const host of hosts) host.daemon = await startDaemon(host.configPath);
    sampler = startSampler(marker);
    return { marker, hostA, cellA };
  };

  /** Waits for the agent to run exactly once, on `host`; resolves with that incarnation. */
  const runningOn = (marker: string, host: Host) =>
    waitFor(
      async () => {
        const now = await theIncarnation(marker);
        return now?.host === host.id ? now : undefined;
      },
      30_000,
      `${AGENT} running once on ${host.id}`,
    );

  /**
   * SIGKILLs host-a's daemon and waits for the agent to run again on a live host: within 2T,
   * under a newer epoch than `epoch`. Resolves with that incarnation.
   */
  const killAndTakeOver = async (marker: string, hostA: Host, epoch: number) => {
    const killedAt = Date.now();
    await killDaemon(hostA.daemon!);
    hostA.daemon = undefined;
    const after = await waitFor(
      async () => {
        const now = await theIncarnation(marker);
        return now && now.host !== hostA.id ? now : undefined;
      },
      4 * LEASE_S * 1000,
      `${AGENT} running again on a live host`,
    );
    const tookMs = Date.now() - killedAt;
    expect(tookMs, `takeover took ${tookMs} ms`).toBeLessThanOrEqual(2 * LEASE_S * 1000);
    expect(after.epoch, 'a newer epoch').toBeGreaterThan(epoch);
    return after;
  };

  it('runs the agent again exactly once on a live host within 2T, its workspace restored from the object store and a newer epoch; the dead host, back, does not start it', async () => {
    const { marker, hostA, cellA } = await setUp({
      checkpointEveryS: 1,
      agents: { [AGENT]: `cell = "${CELL}"` },
      cellAgents: [AGENT],
    });
    const before = await runningOn(marker, hostA);
    const firstLine = `epoch=${before.epoch} host=${hostA.id}`;
    await waitFor(
      async () =>
        (
          await fs.readFile(join(cellA, 'workspace', 'journal.txt'), 'utf8').catch(() => '')
        ).includes(firstLine) || undefined,
      10_000,
      'the agent to write its journal',
    );
    // A checkpoint taken after the write, in the object store.
    const puts = () =>
      hostA.daemon!.output().match(/checkpoint put in the object store/g)?.length ?? 0;
    const seen = puts();
    await waitFor(() => puts() > seen || undefined, 15_000, 'a checkpoint in the object store');

    const after = await killAndTakeOver(marker, hostA, before.epoch);
    expect(after.pid).not.toBe(before.pid);
    // The cell was rebuilt on the new owner, its workspace restored: the old line, then the new.
    const owner = hosts.find((host) => host.id === after.host)!;
    const cellB = join(owner.base, 'missions', CELL);
    const journal = await waitFor(
      async () => {
        const text = await fs
          .readFile(join(cellB, 'workspace', 'journal.txt'), 'utf8')
          .catch(() => '');
        return text.includes(`epoch=${after.epoch} host=${after.host}`) ? text : undefined;
      },
      5_000,
      'the new incarnation to write its journal',
    );
    expect(journal.split('\n').filter(Boolean)).toEqual([
      firstLine,
      `epoch=${after.epoch} host=${after.host}`,
    ]);
    // The start is logged by the new owner under its epoch, naming the host it took over from.
    const started = await waitFor(
      async () =>
        (await cellEvents(cellB)).find(
          (event) => event.event === 'agent_started' && event.pid === after.pid,
        ),
      5_000,
      `the start of ${AGENT} in the rebuilt cell's event log`,
    );
    expect(started).toMatchObject({
      agent: AGENT,
      epoch: after.epoch,
      host: after.host,
      taken_over_from: hostA.id,
    });
    expect(await cellEvents(cellB)).toContainEqual(
      expect.objectContaining({
        event: 'checkpoint_restored',
        reason: `cluster takeover from host ${hostA.id}`,
      }),
    );
    expect(sampler!.doubles()).toEqual([]);

    // host-a comes back (same state dir, its stale copy of the cell on disk): it follows the
    // owner record and does not start the agent.
    hostA.daemon = await startDaemon(hostA.configPath);
    await waitFor(
      async () =>
        (await cellEvents(cellA)).find(
          (event) =>
            event.event === 'start_refused' &&
            (event as { owner_host?: string }).owner_host === after.host,
        ),
      4 * LEASE_S * 1000,
      `${hostA.id} to refuse starting the agent another host owns`,
    );
    expect(await theIncarnation(marker)).toEqual(after);
    expect(sampler!.doubles()).toEqual([]);
  }, 120_000);

  it('a new cell is checkpointed into the object store at once, not an interval (here 1 h) later, so its host can die in its first hour and the agent is still taken over with its workspace', async () => {
    const { marker, hostA } = await setUp({
      checkpointEveryS: 3600,
      agents: { [AGENT]: `cell = "${CELL}"` },
      cellAgents: [AGENT],
    });
    const before = await runningOn(marker, hostA);
    await waitFor(
      () => /checkpoint put in the object store/.test(hostA.daemon!.output()) || undefined,
      15_000,
      'the new cell’s first checkpoint in the object store',
    );

    const after = await killAndTakeOver(marker, hostA, before.epoch);
    const owner = hosts.find((host) => host.id === after.host)!;
    expect(await cellEvents(join(owner.base, 'missions', CELL))).toContainEqual(
      expect.objectContaining({
        event: 'checkpoint_restored',
        reason: `cluster takeover from host ${hostA.id}`,
      }),
    );
    expect(sampler!.doubles()).toEqual([]);
  }, 120_000);

  it('a cell with no checkpoint in the object store: an agent whose policy substitutes it is substituted on a live host, the others are left dead, and the log says so', async () => {
    const { marker, hostA } = await setUp({
      checkpointEveryS: 0,
      agents: {
        worker: `cell = "${CELL}"\nsubstitutes = ["spare"]`,
        loner: `cell = "${CELL}"`,
        spare: '',
      },
      cellAgents: ['worker', 'loner'],
      extra: ['[policy.agents.worker]', 'mode = "substitute"'],
    });
    for (const agent of ['worker', 'loner'])
      await waitFor(
        async () => (await theIncarnation(marker, agent))?.host === hostA.id || undefined,
        30_000,
        `${agent} running once on ${hostA.id}`,
      );
    await waitFor(
      () => /cell definition put in the object store/.test(hostA.daemon!.output()) || undefined,
      15_000,
      'the cell’s definition in the object store',
    );
    await killDaemon(hostA.daemon!);
    hostA.daemon = undefined;
    const spare = await waitFor(
      async () => {
        const now = await theIncarnation(marker, 'spare');
        return now && now.host !== hostA.id ? now : undefined;
      },
      30_000,
      'the substitute running on a live host',
    );
    const owner = hosts.find((host) => host.id === spare.host)!;
    expect(owner.daemon!.output()).toMatch(
      /"msg":"cluster: a cell of a host that is gone has no checkpoint in the object store".*"substituted_per_policy":\["worker"\].*"left_dead":\["loner"\]/,
    );
    const live = await liveAgents(marker);
    expect(live.get('worker') ?? []).toEqual([]);
    expect(live.get('loner') ?? []).toEqual([]);
    expect(sampler!.doubles()).toEqual([]);
  }, 120_000);
});
