/**
 * Issue 17 against a whole daemon (a real `pit daemon` process, real agents): damaged files at
 * start, a torn last line in events.jsonl, an over-long line in the SSE feed, an adopted agent's
 * mission bus, and what `pit status` says of a stopped (SIGSTOP) agent once its death is decided.
 */
import { promises as fs } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { readEvents } from '@pit/cell-spec';
import { connectBus } from '@pit/mission-bus';
import { cleanup, reapLater, waitFor, within } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { approvalsPath } from '../src/approvals-file.js';
import { agentStatePath } from '../src/state-store.js';
import { cellEvents } from './fleet.js';
import { exitOf, getStatus, healthyAgent, setupFleet, startDaemon } from './e2e.js';

const agentPids = new Set<number>();
const daemons: Array<ReturnType<typeof startDaemon> extends Promise<infer D> ? D : never> = [];

afterEach(async () => {
  for (const daemon of daemons.splice(0)) {
    if (daemon.child.exitCode === null && daemon.child.signalCode === null)
      daemon.child.kill('SIGTERM');
    await within(exitOf(daemon.child), 20_000, 'daemon exit').catch(() => undefined);
  }
  for (const pid of agentPids) reapLater(pid);
  agentPids.clear();
  await cleanup();
});

const started = async (configPath: string) => {
  const daemon = await startDaemon(configPath);
  daemons.push(daemon);
  expect(daemon.failed).toBeUndefined();
  return daemon;
};
const healthy = async (url: string, name: string, not?: number) => {
  const agent = await healthyAgent(url, name, not);
  agentPids.add(agent.pid!);
  return agent;
};
const stop = async (daemon: Awaited<ReturnType<typeof started>>) => {
  daemon.child.kill('SIGTERM');
  await within(exitOf(daemon.child), 20_000, 'daemon exit');
};
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
/** Every event `pit why` would read from the cell's log, and the lines it would call invalid. */
async function readLog(cellDir: string) {
  const events: Array<{ event: string; agent?: string }> = [];
  const invalid: string[] = [];
  for await (const item of readEvents(join(cellDir, 'logs', 'events.jsonl')))
    if (item.ok) events.push(item.event as { event: string; agent?: string });
    else invalid.push(item.raw);
  return { events, invalid };
}

describe(
  'damaged files, torn lines, the SSE feed, the bus and SIGSTOP (issue 17, whole daemon)',
  { timeout: 90_000 },
  () => {
    it('starts on a damaged approvals.json and state.json: each kept aside, warned, a problem in the status; the agent stays supervised; a torn event line swallows nothing', async () => {
      const { cell, configPath, stateDir } = await setupFleet(['forge']);
      const first = await started(configPath);
      const forge = await healthy(first.url, 'forge');
      await stop(first); // SIGTERM leaves the agent running
      const statePath = agentStatePath(stateDir, cell.dir);
      await fs.writeFile(approvalsPath(stateDir), '{"version": 2, "requests": [{"id": "');
      await fs.writeFile(statePath, '{"version": 1, "agents": {"forge": {"pid"');
      const torn = '{"ts":"2026-12-03T00:00:00.000Z","event":"agent_dea';
      await fs.appendFile(join(cell.dir, 'logs', 'events.jsonl'), torn);

      const second = await started(configPath);
      const status = await waitFor(
        async () => {
          const now = await getStatus(second.url);
          return now.problems.length >= 2 ? now : undefined;
        },
        20_000,
        'both damaged files among the problems',
      );
      expect(status.problems).toEqual(
        expect.arrayContaining([
          expect.stringContaining(approvalsPath(stateDir)),
          expect.stringContaining(statePath),
        ]),
      );
      const output = second.child.output();
      const warned = output
        .split('\n')
        .filter((line) => /"level":"(warn|error)"/.test(line) && line.includes('corrupt'));
      expect(warned.some((line) => line.includes(approvalsPath(stateDir)))).toBe(true);
      expect(warned.some((line) => line.includes(statePath))).toBe(true);
      // Nothing lost: both damaged files' bytes are kept aside in the state directory.
      const kept = (await fs.readdir(stateDir, { recursive: true })).filter((name) =>
        String(name).includes('.corrupt-'),
      );
      expect(kept.some((name) => String(name).startsWith('approvals.json.corrupt-'))).toBe(true);
      expect(kept.some((name) => String(name).includes('state.json.corrupt-'))).toBe(true);

      // The agent is still the one supervised (found again by its marks), and its death is told whole.
      const again = await healthy(second.url, 'forge');
      expect(again.pid).toBe(forge.pid);
      process.kill(forge.pid!, 'SIGKILL');
      await healthy(second.url, 'forge', forge.pid);
      const log = await waitFor(
        async () => {
          const read = await readLog(cell.dir);
          return read.events.some((event) => event.event === 'agent_revived') ? read : undefined;
        },
        20_000,
        'agent_revived in the log',
      );
      expect(log.events.map((event) => event.event)).toEqual(
        expect.arrayContaining(['agent_dead', 'agent_revived']),
      );
      // The torn line is one invalid line of its own (ended before the next append): nothing merged into it.
      expect(log.invalid).toEqual([torn]);
    });

    it('streams the events after a line over 1 MiB in the SSE feed, and says it skipped one', async () => {
      const { cell, configPath } = await setupFleet(['forge']);
      const daemon = await started(configPath);
      const forge = await healthy(daemon.url, 'forge');
      await fs.appendFile(
        join(cell.dir, 'logs', 'events.jsonl'),
        `${JSON.stringify({ ts: new Date().toISOString(), event: 'note', text: 'x'.repeat(2 * 1024 * 1024) })}\n`,
      );
      const controller = new AbortController();
      const response = await fetch(`${daemon.url}/api/events?cell=${cell.uuid}`, {
        signal: controller.signal,
      });
      const reader = response.body!.getReader();
      let text = '';
      const seen = waitFor(
        async () => {
          const { value, done } = await reader.read();
          if (done) throw new Error(`the feed ended: ${text.slice(-500)}`);
          text += new TextDecoder().decode(value);
          return /event: agent_dead\n/.test(text) ? text : undefined;
        },
        20_000,
        'agent_dead over SSE after the over-long line',
      );
      process.kill(forge.pid!, 'SIGKILL');
      await seen;
      controller.abort();
      expect(text).not.toContain('x'.repeat(1000));
      expect(daemon.child.output()).toContain('event feed skipped an over-long line');
    });

    it('reopens the mission bus for an agent adopted after a daemon restart: its own token still works', async () => {
      const port = await freePort();
      const { cell, configPath } = await setupFleet(['forge'], {
        extra: `[bus]\nlisten = "127.0.0.1:${port}"`,
      });
      const first = await started(configPath);
      const forge = await healthy(first.url, 'forge');
      const environ = Object.fromEntries(
        (await fs.readFile(`/proc/${forge.pid}/environ`, 'utf8'))
          .split('\0')
          .filter(Boolean)
          .map((entry) => [
            entry.slice(0, entry.indexOf('=')),
            entry.slice(entry.indexOf('=') + 1),
          ]),
      );
      expect(environ.LAZARUS_BUS_URL).toBe(`ws://127.0.0.1:${port}`);
      process.kill(-first.child.pid!, 'SIGKILL');
      await within(exitOf(first.child), 10_000, 'daemon killed');
      const second = await started(configPath);
      expect((await healthy(second.url, 'forge')).pid).toBe(forge.pid);
      const client = await waitFor(
        () =>
          connectBus({
            url: environ.LAZARUS_BUS_URL!,
            mission: cell.uuid,
            participant: 'forge',
            token: environ.LAZARUS_BUS_TOKEN!,
            reconnect: false,
            connectTimeoutMs: 3000,
          }).catch(() => undefined),
        20_000,
        'the adopted agent on its bus with its own token',
      );
      try {
        const ack = await client.publish({ topic: 'status', payload: { text: 'still here' } });
        expect(ack.seq).toBeGreaterThan(0);
      } finally {
        await client.close();
      }
    });

    it('never shows a SIGSTOPped agent healthy once its death is decided, and replaces it without waiting out the stop grace', async () => {
      const { cell, configPath } = await setupFleet(['forge'], { agentExtra: 'stop_grace_s = 60' });
      // A short heartbeat threshold: the stopped agent's heartbeat goes stale in 3 s.
      await fs.writeFile(
        configPath,
        (await fs.readFile(configPath, 'utf8')).replace(
          'poll_interval_s = 0.2',
          'poll_interval_s = 0.2\nheartbeat_stale_s = 3',
        ),
        { mode: 0o600 },
      );
      const daemon = await started(configPath);
      const forge = await healthy(daemon.url, 'forge');
      process.kill(forge.pid!, 'SIGSTOP');
      const stoppedAt = Date.now();
      // From the moment agent_dead is in the log, the status never says healthy for that pid.
      const sightings: string[] = [];
      await waitFor(
        async () => {
          const dead = (await cellEvents(cell.dir)).some(
            (event) => event.event === 'agent_dead' && event.agent === 'forge',
          );
          if (!dead) return undefined;
          const agent = (await getStatus(daemon.url)).agents.find((each) => each.agent === 'forge');
          sightings.push(`${agent?.health} pid ${agent?.pid}`);
          return agent?.pid !== forge.pid && agent?.health === 'healthy' ? true : undefined;
        },
        30_000,
        'forge replaced and healthy',
      );
      expect(sightings.filter((seen) => seen === `healthy pid ${forge.pid}`)).toEqual([]);
      // Replaced well inside the 60 s stop grace: the stopped process got SIGCONT with its SIGTERM.
      expect(Date.now() - stoppedAt).toBeLessThan(30_000);
      await expect(fs.access(`/proc/${forge.pid}`)).rejects.toThrow();
    });
  },
);
