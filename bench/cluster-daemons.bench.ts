/**
 * Issue #16's acceptance bench with real `pit daemon`s and real agents: a 3-node `nats-server`
 * cluster on 127.0.0.1 and three `pit daemon`s (their own directories, state dirs and
 * `[cluster] host_id`s) sharing one `[agents]` table of AGENTS agents (3 × 3,000; BENCH_SMOKE=1:
 * 3 × 30; PIT_BENCH_CLUSTER_PER_HOST=N: 3 × N), each agent a real process (`sleep`, outside
 * cells: nothing to probe but the process). Lease T: the daemon's default, 15 s (smoke: 3 s;
 * PIT_BENCH_LEASE_S overrides). Every time is taken from the daemons' own event logs
 * (`<state>/logs/events.jsonl`: the `ts` of `agent_started` / `agent_revived`), every count of
 * live agents from /proc (an agent's environment names its host and epoch). What it measures:
 * - placement: from spawning the three daemons until every agent has been started once;
 * - steady state over a quiet window: CPU (% of a core) and RSS of each daemon process, NATS
 *   messages per second (all nodes' `in_msgs` / `out_msgs` from `/varz`) and the nodes' CPU;
 *   the same CPU and RSS for one daemon without `[cluster]` holding as many agents as one
 *   cluster host (the single-host path, run first, alone);
 * - the coordination cost per revive: REVIVES agents SIGKILLed one at a time, kill → the
 *   daemon's `agent_revived`, on that single host and on the clustered daemons;
 * - takeover: the daemon holding the most agents is SIGKILLed (its process group; its agents are
 *   in their own groups and are killed by its fence process, cluster/fence.ts); for each of its
 *   agents, kill → `agent_started` (or `agent_revived`) under a newer epoch on a live host,
 *   p50/p99 (target ≤ 2T), and how many of them were taken over at all;
 * - exactly once: /proc is scanned during the takeover and once after it; an agent with two live
 *   processes is a double (target 0).
 * The fleet brake is off in every daemon (`[policy.fleet_brake] enabled = false`): the revive
 * measurement kills more than its 5 deaths in 2 minutes, and a braked restart would measure the
 * brake; takeover starts are first starts on the new host, which the brake does not space.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { natsServerPath, startNatsCluster, type TestNatsCluster } from '@pit/test-kit';
import { tailEvents, type DaemonEvent, type EventTail } from './lib/event-tail.js';
import {
  agentProcesses,
  byAgent,
  doubles,
  killProcessesUnder,
  type AgentProcess,
} from './lib/incarnations.js';
import { natsMessages, SLEEP_PROGRAM, sleepAgentName, sleepFleetToml } from './lib/sleep-fleet.js';
import { PIT_MODE_NOTE, startPitDaemon, writeConfig, type PitDaemon } from './lib/pit.js';
import { cpuMs, killGroup, memoryMb, reapAll } from './lib/proc.js';
import { emitResult, machineNote, progress, smoke, type BenchRow } from './lib/report.js';
import { round, summary } from './lib/stats.js';

const PER_HOST = Number(process.env.PIT_BENCH_CLUSTER_PER_HOST ?? (smoke ? 30 : 3000));
const HOST_IDS = ['host-a', 'host-b', 'host-c'];
const AGENTS = HOST_IDS.length * PER_HOST;
/** The host lease T, s: the daemon's default (config-schema.ts `lease_s`) at full size. */
const LEASE_S = Number(process.env.PIT_BENCH_LEASE_S ?? (smoke ? 3 : 15));
const LEASE_MS = LEASE_S * 1000;
/** Agents SIGKILLed one at a time, on the single host and on the cluster. */
const REVIVES = smoke ? 5 : 30;
const STEADY_MS = smoke ? 5000 : 60_000;
/** How often the logs are read and /proc is scanned while waiting (ms). */
const POLL_MS = smoke || AGENTS <= 3000 ? 250 : 1000;
/** Bounds: a start-up or takeover that takes longer is reported, not waited for. */
const PLACEMENT_TIMEOUT_MS = 120_000 + AGENTS * 80;
const REVIVE_TIMEOUT_MS = 30_000;
/** The agents' one argument: a duration no other process here has (found in /proc). */
const TOKEN = `86399.${process.pid}`;
const log = progress('cluster-daemons');

/** One daemon of the run, with its event log read as it grows. */
interface Host {
  id: string;
  base: string;
  daemon: PitDaemon | undefined;
  tail: EventTail;
  events: DaemonEvent[];
}

/** The pit.toml of a host: `count` sleep agents outside cells, clustered when `cluster` is given. */
function hostToml(options: {
  work: string;
  count: number;
  cluster?: { servers: string[]; hostId: string };
}): string {
  const extra = [
    '[logs]',
    // Never rotated during a run: the benchmark follows events.jsonl (lib/event-tail.ts).
    `max_bytes = ${2 ** 30}`,
    '[policy.fleet_brake]',
    'enabled = false',
  ];
  if (options.cluster)
    extra.push(
      '[cluster]',
      `servers = [${options.cluster.servers.map((url) => JSON.stringify(url)).join(', ')}]`,
      `host_id = "${options.cluster.hostId}"`,
      `lease_s = ${LEASE_S}`,
    );
  return sleepFleetToml({ work: options.work, count: options.count, token: TOKEN, extra });
}

/** Writes a host's directory and config; the daemon is started by {@link spawnDaemon}. */
function prepareHost(
  dir: string,
  id: string,
  toml: (work: string) => string,
): { host: Host; configPath: string } {
  const base = join(dir, id);
  const work = join(base, 'work');
  mkdirSync(join(base, 'missions'), { recursive: true });
  mkdirSync(work, { recursive: true });
  const configPath = writeConfig(join(base, 'pit.toml'), toml(work));
  const tail = tailEvents(join(base, 'state', 'logs', 'events.jsonl'));
  return { host: { id, base, daemon: undefined, tail, events: [] }, configPath };
}

async function spawnDaemon(host: Host, configPath: string): Promise<void> {
  host.daemon = await startPitDaemon({
    configPath,
    cwd: host.base,
    readyTimeoutMs: PLACEMENT_TIMEOUT_MS,
  });
}

/** Reads what each host's daemon wrote since the last call; returns the new events. */
async function readLogs(hosts: readonly Host[]): Promise<Array<[Host, DaemonEvent]>> {
  const fresh: Array<[Host, DaemonEvent]> = [];
  for (const host of hosts) {
    const events = await host.tail.read();
    host.events.push(...events);
    for (const event of events) fresh.push([host, event]);
  }
  return fresh;
}

const isStart = (event: DaemonEvent) =>
  event.event === 'agent_started' || event.event === 'agent_revived';

/**
 * Polls the hosts' logs until `done()` (after each poll), or `timeoutMs`; `each` sees every new
 * event, `tick` runs once per poll. @returns whether `done()` held.
 */
async function follow(options: {
  hosts: readonly Host[];
  timeoutMs: number;
  what: string;
  each?: (host: Host, event: DaemonEvent) => void;
  tick?: () => void;
  done: () => boolean;
  state?: () => string;
}): Promise<boolean> {
  const started = Date.now();
  let reported = started;
  for (;;) {
    for (const [host, event] of await readLogs(options.hosts)) options.each?.(host, event);
    options.tick?.();
    if (options.done()) return true;
    if (Date.now() - started > options.timeoutMs) {
      log(
        `gave up waiting for ${options.what} after ${options.timeoutMs} ms: ${options.state?.()}`,
      );
      return false;
    }
    if (Date.now() - reported >= 10_000) {
      reported = Date.now();
      log(`still waiting for ${options.what}: ${options.state?.() ?? ''}`);
    }
    await sleep(POLL_MS);
  }
}

/** Until every one of `count` agents has an `agent_started` in `hosts`' logs. @returns the last one's time. */
async function waitForAllStarted(hosts: readonly Host[], count: number): Promise<number> {
  const first = new Map<string, number>();
  const complete = await follow({
    hosts,
    timeoutMs: PLACEMENT_TIMEOUT_MS,
    what: `all ${count} agents started`,
    each: (_, event) => {
      if (event.event === 'agent_started' && event.agent && !first.has(event.agent))
        first.set(event.agent, Date.parse(event.ts));
    },
    done: () => first.size >= count,
    state: () => `${first.size} of ${count} started`,
  });
  if (!complete) throw new Error(`only ${first.size} of ${count} agents started`);
  return Math.max(...first.values());
}

/**
 * SIGKILLs `victims` one at a time, each once the previous one is running again; for each, kill →
 * the `agent_revived` (a new pid) in its host's log (ms). A revive that does not come is an error.
 */
async function reviveLatencies(
  hosts: readonly Host[],
  victims: readonly AgentProcess[],
): Promise<number[]> {
  const latencies: number[] = [];
  for (const victim of victims) {
    await readLogs(hosts);
    const marks = new Map(hosts.map((host) => [host, host.events.length]));
    const killedAt = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    let revivedAt: number | undefined;
    const came = await follow({
      hosts,
      timeoutMs: REVIVE_TIMEOUT_MS,
      what: `${victim.agent}'s revive`,
      done: () => {
        for (const host of hosts)
          for (const event of host.events.slice(marks.get(host)))
            if (isStart(event) && event.agent === victim.agent && event.pid !== victim.pid)
              revivedAt = Date.parse(event.ts);
        return revivedAt !== undefined;
      },
    });
    if (!came || revivedAt === undefined)
      throw new Error(
        `${victim.agent} (pid ${victim.pid}) was not revived within ${REVIVE_TIMEOUT_MS} ms`,
      );
    latencies.push(revivedAt - killedAt);
  }
  return latencies;
}

/** `count` agents' processes, spread over their hosts (round robin). */
function pickVictims(processes: AgentProcess[], count: number): AgentProcess[] {
  const byHost = new Map<string, AgentProcess[]>();
  for (const process of processes) {
    const list = byHost.get(process.host ?? '-');
    if (list) list.push(process);
    else byHost.set(process.host ?? '-', [process]);
  }
  const lists = [...byHost.values()];
  const picked: AgentProcess[] = [];
  for (let turn = 0; picked.length < count && lists.some((list) => list.length > turn); turn++)
    for (const list of lists) {
      const process = list[turn];
      if (process && picked.length < count) picked.push(process);
    }
  return picked;
}

/** What the daemon without [cluster] came to. */
interface SingleHost {
  takeUpMs: number;
  revives: number[];
  cpu: number;
  rss: number;
}

/**
 * Phase 1: one daemon without [cluster] and PER_HOST agents: its take-up time, its CPU and RSS
 * over the same quiet window as the cluster's, and its revive latencies.
 */
async function singleHost(dir: string): Promise<SingleHost> {
  const { host, configPath } = prepareHost(dir, 'single', (work) =>
    hostToml({ work, count: PER_HOST }),
  );
  const spawnedAt = Date.now();
  try {
    await spawnDaemon(host, configPath);
    const takeUpMs = (await waitForAllStarted([host], PER_HOST)) - spawnedAt;
    log(`single host: ${PER_HOST} agents started ${takeUpMs} ms after the spawn`);
    await sleep(LEASE_MS);
    const load = await loadOf([host.daemon!.pid], () => sleep(STEADY_MS));
    log(`single host: steady CPU ${load.cpu[0]!.toFixed(1)} %, RSS ${load.rss[0]!.toFixed(0)} MB`);
    const victims = pickVictims(agentProcesses(SLEEP_PROGRAM, TOKEN), REVIVES);
    const revives = await reviveLatencies([host], victims);
    log(`single host: revive p50 ${summary(revives, 0).p50} ms`);
    return { takeUpMs, revives, cpu: load.cpu[0]!, rss: load.rss[0]! };
  } finally {
    await host.daemon?.stop(60_000);
    killProcessesUnder(host.base);
  }
}

/** CPU (% of a core, each) and RSS (MB, at the end) of `pids` over `during` (a window it awaits). */
async function loadOf(
  pids: number[],
  during: () => Promise<unknown>,
): Promise<{ cpu: number[]; rss: number[]; windowMs: number }> {
  const cpuNow = () => pids.map((pid) => cpuMs(pid) ?? Number.NaN);
  const before = cpuNow();
  const startedAt = Date.now();
  await during();
  const windowMs = Date.now() - startedAt;
  return {
    cpu: cpuNow().map((value, index) => ((value - before[index]!) / windowMs) * 100),
    rss: pids.map((pid) => memoryMb(pid)?.rss ?? Number.NaN),
    windowMs,
  };
}

/** Phase 2b: CPU and RSS of each daemon and NATS node, and NATS messages, over a quiet window. */
async function steadyState(hosts: readonly Host[], nats: TestNatsCluster) {
  const natsPids = nats.nodes.map((node) => node.process?.pid ?? 0);
  const messagesBefore = await natsMessages(nats);
  let natsLoad: Awaited<ReturnType<typeof loadOf>> | undefined;
  const daemons = await loadOf(
    hosts.map((host) => host.daemon!.pid),
    async () => (natsLoad = await loadOf(natsPids, () => sleep(STEADY_MS))),
  );
  const messages = await natsMessages(nats);
  const seconds = daemons.windowMs / 1000;
  return {
    windowMs: daemons.windowMs,
    daemonCpu: daemons.cpu,
    daemonRss: daemons.rss,
    natsCpu: natsLoad!.cpu,
    natsRss: natsLoad!.rss,
    inPerS: (messages.in - messagesBefore.in) / seconds,
    outPerS: (messages.out - messagesBefore.out) / seconds,
  };
}

/** What the takeover of a killed host's agents came to. */
interface Takeover {
  victim: string;
  moving: number;
  /** Per agent taken over: kill → its start on a live host (ms). */
  took: number[];
  /** Agents whose new start does not name the victim in `taken_over_from`. */
  unnamed: string[];
  /** Agents never started again within the bound. */
  missing: string[];
  /** Kill → the first /proc scan that found none of the victim's processes (ms, an upper bound). */
  fencedMs: number | undefined;
  /** Victim processes still alive at the end. */
  survivorsOfVictim: number;
  doubles: string[];
  scans: number;
  refused: number;
}

/** Phase 2d: SIGKILL of the daemon holding the most agents, and what follows (see the header). */
async function takeOver(hosts: Host[]): Promise<Takeover> {
  const before = agentProcesses(SLEEP_PROGRAM, TOKEN);
  const held = new Map(hosts.map((host) => [host.id, 0]));
  for (const process of before) held.set(process.host!, (held.get(process.host!) ?? 0) + 1);
  const victim = hosts.reduce((most, host) =>
    held.get(host.id)! > held.get(most.id)! ? host : most,
  );
  const survivors = hosts.filter((host) => host !== victim);
  const moving = new Map(before.filter((p) => p.host === victim.id).map((p) => [p.agent, p]));
  await readLogs(hosts);
  const took = new Map<string, number>();
  const unnamed: string[] = [];
  const seenDoubles = new Set<string>();
  let victimAlive = moving.size;
  let goneAt: number | undefined;
  let scans = 0;
  let refused = 0;
  log(`SIGKILL of ${victim.id}'s daemon (holds ${moving.size} of ${before.length} agents)`);
  const killedAt = Date.now();
  killGroup(victim.daemon!.pid, 'SIGKILL');
  const scan = () => {
    const now = agentProcesses(SLEEP_PROGRAM, TOKEN);
    scans += 1;
    for (const line of doubles(now)) seenDoubles.add(line);
    victimAlive = now.filter((p) => moving.get(p.agent)?.pid === p.pid).length;
    if (victimAlive === 0) goneAt ??= Date.now();
  };
  await follow({
    hosts: survivors,
    timeoutMs: 4 * LEASE_MS + moving.size * 100 + 30_000,
    what: `the takeover of ${moving.size} agents`,
    each: (_, event) => {
      if (event.event === 'start_refused') refused += 1;
      const old = event.agent ? moving.get(event.agent) : undefined;
      if (!old || !isStart(event) || took.has(old.agent)) return;
      // Only events written after the kill reach here (the logs were read up to it first).
      if ((event.epoch ?? 0) <= (old.epoch ?? 0)) return;
      took.set(old.agent, Date.parse(event.ts) - killedAt);
      if (event.taken_over_from !== victim.id) unnamed.push(old.agent);
    },
    tick: scan,
    done: () => took.size === moving.size,
    state: () =>
      `${took.size} of ${moving.size} taken over, ${victimAlive} of the victim's still alive`,
  });
  victim.daemon = undefined;
  // Once after: the takeover's last starts have settled.
  await sleep(Math.min(LEASE_MS, 5000));
  scan();
  return {
    victim: victim.id,
    moving: moving.size,
    took: [...took.values()],
    unnamed,
    missing: [...moving.keys()].filter((agent) => !took.has(agent)),
    fencedMs: goneAt === undefined ? undefined : goneAt - killedAt,
    survivorsOfVictim: victimAlive,
    doubles: [...seenDoubles],
    scans,
    refused,
  };
}

/** Every agent's live processes now: how many agents run exactly once, and the doubles. */
function census(): {
  once: number;
  absent: number;
  doubles: string[];
  perHost: Map<string, number>;
} {
  const processes = agentProcesses(SLEEP_PROGRAM, TOKEN);
  const grouped = byAgent(processes);
  const perHost = new Map<string, number>();
  for (const process of processes)
    perHost.set(process.host ?? '-', (perHost.get(process.host ?? '-') ?? 0) + 1);
  let once = 0;
  for (let index = 0; index < AGENTS; index += 1)
    if (grouped.get(sleepAgentName(index))?.length === 1) once += 1;
  const absent = AGENTS - [...grouped.keys()].length;
  return { once, absent, doubles: doubles(processes), perHost };
}

const hostsNote = (perHost: Map<string, number>) =>
  [...perHost]
    .sort()
    .map(([host, count]) => `${host} ${count}`)
    .join(', ');

/** Phase 2: the three clustered daemons, from their spawn to the takeover. */
async function cluster(dir: string, nats: TestNatsCluster, hosts: Host[]) {
  const prepared = HOST_IDS.map((id) =>
    prepareHost(dir, id, (work) =>
      hostToml({ work, count: AGENTS, cluster: { servers: nats.urls, hostId: id } }),
    ),
  );
  hosts.push(...prepared.map(({ host }) => host));
  const spawnedAt = Date.now();
  await Promise.all(prepared.map(({ host, configPath }) => spawnDaemon(host, configPath)));
  const readyMs = Date.now() - spawnedAt;
  const placedMs = (await waitForAllStarted(hosts, AGENTS)) - spawnedAt;
  const placed = census();
  log(`placed ${AGENTS} agents ${placedMs} ms after the spawn: ${hostsNote(placed.perHost)}`);
  await sleep(LEASE_MS);
  const steady = await steadyState(hosts, nats);
  log(
    `steady: daemon CPU ${steady.daemonCpu.map((c) => c.toFixed(1)).join(' / ')} %, RSS ${steady.daemonRss.map((r) => r.toFixed(0)).join(' / ')} MB, NATS ${steady.inPerS.toFixed(1)} msg/s in`,
  );
  const revives = await reviveLatencies(
    hosts,
    pickVictims(agentProcesses(SLEEP_PROGRAM, TOKEN), REVIVES),
  );
  log(`cluster: revive p50 ${summary(revives, 0).p50} ms`);
  const takeover = await takeOver(hosts);
  const after = census();
  log(
    `takeover of ${takeover.took.length} of ${takeover.moving}: p50 ${summary(takeover.took, 0).p50} ms, p99 ${summary(takeover.took, 0).p99} ms; after: ${after.once} running once, ${after.doubles.length} doubles`,
  );
  return { readyMs, placedMs, placed, steady, revives, takeover, after };
}

const max = (values: number[]) => round(Math.max(...values), 1);

/** The rows of placement, the steady state and the revives, beside the single host's. */
function steadyRows(single: SingleHost, run: Awaited<ReturnType<typeof cluster>>): BenchRow[] {
  const { steady } = run;
  const alone = summary(single.revives, 0);
  const clustered = summary(run.revives, 0);
  return [
    { metric: 'agents (3 daemons × per host)', value: AGENTS, unit: 'agents' },
    {
      metric: 'single host: all its agents started after spawn',
      value: single.takeUpMs,
      unit: 'ms',
    },
    { metric: 'placement: every agent started once after spawn', value: run.placedMs, unit: 'ms' },
    {
      metric: 'steady CPU per daemon (max of 3)',
      value: max(steady.daemonCpu),
      unit: '% of a core',
    },
    { metric: 'steady RSS per daemon (max of 3)', value: max(steady.daemonRss), unit: 'MB' },
    {
      metric: 'steady CPU, single host (same agents per daemon)',
      value: round(single.cpu, 1),
      unit: '% of a core',
    },
    { metric: 'steady RSS, single host', value: round(single.rss, 1), unit: 'MB' },
    { metric: 'NATS messages in, all nodes', value: round(steady.inPerS, 1), unit: 'msg/s' },
    { metric: 'NATS messages out, all nodes', value: round(steady.outPerS, 1), unit: 'msg/s' },
    {
      metric: 'steady CPU per NATS node (max of 3)',
      value: max(steady.natsCpu),
      unit: '% of a core',
    },
    { metric: 'revive (kill → agent_revived), single host, p50', value: alone.p50, unit: 'ms' },
    { metric: 'revive, single host, p99', value: alone.p99, unit: 'ms' },
    { metric: 'revive, clustered, p50', value: clustered.p50, unit: 'ms' },
    { metric: 'revive, clustered, p99', value: clustered.p99, unit: 'ms' },
    {
      metric: 'coordination cost per revive (p50 clustered − single)',
      value: clustered.p50 - alone.p50,
      unit: 'ms',
    },
  ];
}

/** The rows of the takeover and of the exactly-once checks. */
function takeoverRows(run: Awaited<ReturnType<typeof cluster>>): BenchRow[] {
  const { takeover, after } = run;
  const took = summary(takeover.took, 0);
  const first = takeover.took.length ? Math.min(...takeover.took) : Number.NaN;
  const twoT = `≤ ${2 * LEASE_MS} (2T)`;
  const doubled = new Set([...takeover.doubles, ...after.doubles].map((d) => d.split(':')[0])).size;
  return [
    { metric: 'agents on the killed daemon', value: takeover.moving, unit: 'agents' },
    {
      metric: 'agents taken over (started again on a live host, newer epoch)',
      value: takeover.took.length,
      unit: 'agents',
      target: `${takeover.moving}`,
      ok: takeover.took.length === takeover.moving,
    },
    {
      metric: 'takeover after SIGKILL, p50',
      value: took.p50,
      unit: 'ms',
      target: twoT,
      ok: took.p50 <= 2 * LEASE_MS,
    },
    {
      metric: 'takeover after SIGKILL, p99',
      value: took.p99,
      unit: 'ms',
      target: twoT,
      ok: took.p99 <= 2 * LEASE_MS,
    },
    { metric: 'takeover after SIGKILL, first agent', value: first, unit: 'ms' },
    { metric: 'takeover after SIGKILL, max', value: took.max, unit: 'ms' },
    {
      metric: 'takeover starts per second (first → last agent)',
      value:
        took.max > first
          ? round((takeover.took.length - 1) / ((took.max - first) / 1000), 1)
          : 'n/a',
      unit: took.max > first ? 'starts/s' : '',
    },
    {
      metric: "killed daemon's agents gone (its fence), after SIGKILL",
      value: takeover.fencedMs ?? `${takeover.survivorsOfVictim} still alive`,
      unit: takeover.fencedMs === undefined ? '' : 'ms',
      target: `< ${LEASE_MS} (T)`,
      ok: takeover.fencedMs !== undefined && takeover.fencedMs < LEASE_MS,
    },
    {
      metric: `agents with two live processes (${takeover.scans + 1} /proc scans)`,
      value: doubled,
      unit: 'agents',
      target: '0',
      ok: doubled === 0,
    },
    {
      metric: 'agents running exactly once after the takeover',
      value: after.once,
      unit: 'agents',
      target: `${AGENTS}`,
      ok: after.once === AGENTS,
    },
  ];
}

function resultNotes(single: SingleHost, run: Awaited<ReturnType<typeof cluster>>): string {
  const { steady, takeover, after } = run;
  const list = (values: number[], digits: number) =>
    values.map((v) => v.toFixed(digits)).join(' / ');
  const findings = [
    takeover.missing.length
      ? `Not taken over within the bound: ${takeover.missing.slice(0, 20).join(', ')}${takeover.missing.length > 20 ? ', …' : ''}.`
      : '',
    takeover.unnamed.length
      ? `${takeover.unnamed.length} takeover starts without taken_over_from = ${takeover.victim}.`
      : '',
    takeover.doubles.length || after.doubles.length
      ? `Doubles: ${[...takeover.doubles, ...after.doubles].slice(0, 10).join('; ')}.`
      : '',
    after.absent ? `${after.absent} agents with no live process after the takeover.` : '',
  ].filter(Boolean);
  return [
    `T (lease) = ${LEASE_S} s. ${AGENTS} agents (\`sleep\`, outside cells) in one [agents] table on 3 pit daemons over a 3-node nats-server cluster on 127.0.0.1, fleet brake off.`,
    `Daemons ready (all 3 say they supervise) ${run.readyMs} ms after the spawn; placement ${hostsNote(run.placed.perHost)}.`,
    `Steady window ${Math.round(steady.windowMs / 1000)} s: daemon CPU ${list(steady.daemonCpu, 2)} % and RSS ${list(steady.daemonRss, 0)} MB; NATS nodes CPU ${list(steady.natsCpu, 2)} % and RSS ${list(steady.natsRss, 0)} MB.`,
    `Revives: ${REVIVES} agents SIGKILLed one at a time; the single host ran ${PER_HOST} agents alone before the cluster started (its take-up ${single.takeUpMs} ms).`,
    `Takeover: ${takeover.victim}'s daemon SIGKILLed (process group) holding ${takeover.moving}; ${takeover.refused} start_refused events on the survivors meanwhile; /proc scanned every ${POLL_MS} ms (the fence time is at that resolution). After: ${hostsNote(after.perHost)}.`,
    ...findings,
    `pit: ${PIT_MODE_NOTE}. ${machineNote()}.`,
  ].join(' ');
}

async function main(): Promise<void> {
  if (!natsServerPath()) {
    emitResult({
      title: 'Cluster of pit daemons (NATS JetStream, real agents)',
      rows: [{ metric: 'not run', value: 'nats-server is not installed', unit: '' }],
    });
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'pit-bench-cluster-daemons-'));
  let nats: TestNatsCluster | undefined;
  const hosts: Host[] = [];
  // Every way out (a failure, a signal): nothing of the run stays behind.
  const killEverything = () => {
    killProcessesUnder(dir);
    for (const node of nats?.nodes ?? []) node.process?.kill('SIGKILL');
  };
  process.once('exit', killEverything);
  try {
    log(`pit: ${PIT_MODE_NOTE}; ${AGENTS} agents, T = ${LEASE_S} s`);
    const single = await singleHost(dir);
    nats = await startNatsCluster(join(dir, 'nats'));
    const run = await cluster(dir, nats, hosts);
    emitResult({
      title: 'Cluster of pit daemons (3 × pit daemon, 3 NATS nodes, real agents)',
      rows: [...steadyRows(single, run), ...takeoverRows(run)],
      notes: resultNotes(single, run),
    });
  } finally {
    await Promise.all(hosts.map((host) => host.daemon?.stop(60_000).catch(() => undefined)));
    killEverything();
    reapAll();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
