/**
 * Revive storm, on the real `pit daemon` (CLI from source): 100 agents (BENCH_SMOKE=1: 20) in 10
 * mission cells, each a real process the daemon started (bench/fixtures/beat-agent.sh, a
 * heartbeat every 2 s), are all killed with SIGKILL at once. Measured from the event logs: the
 * time until every one is dead, revived and healthy again (an `agent_healthy` after the kill),
 * with the fleet brake off and on; and the alerts the daemon sent to a local Telegram Bot API
 * server (@pit/test-kit's, pointed at by `[telegram] api_root`): target one grouped
 * alert per channel.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startTelegramBotApi } from '@pit/test-kit';
import { startLineChild } from './lib/line-child.js';
import { PIT_MODE_NOTE, startPitDaemon, writeConfig, type PitDaemon } from './lib/pit.js';
import { killGroup, reapAll, reapLater } from './lib/proc.js';
import { emitResult, machineNote, progress, smoke, type BenchRow } from './lib/report.js';
import { percentile } from './lib/stats.js';

const CELLS = smoke ? 2 : 10;
const PER_CELL = 10;
const AGENTS = CELLS * PER_CELL;
const BRAKE_INTERVAL = smoke ? '250ms' : '500ms';
const STORM_TIMEOUT_MS = smoke ? 60_000 : 300_000;
/** After the last agent is healthy, alerts still queued (grouped over a window) get this long to arrive. */
const ALERT_GRACE_MS = 5_000;
const CHAT_ID = -1001234567890;
const TOKEN = '7000000001:bench-token-not-a-secret';
const AGENT_SCRIPT = fileURLToPath(new URL('./fixtures/beat-agent.sh', import.meta.url));
const log = progress('revive-storm');

type Event = Record<string, unknown> & { ts: string; event: string; agent?: string };

function events(path: string): Event[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return line.trim() ? [JSON.parse(line) as Event] : [];
      } catch {
        return [];
      }
    });
}

interface StormResult {
  brake: boolean;
  allDeadMs: number;
  allRevivedMs: number;
  allHealthyMs: number;
  healthyP50Ms: number;
  revivedSpanMs: number;
  maxRevivesPerSecond: number;
  healthyCount: number;
  restarts: number;
  telegramMessages: number;
  telegramTexts: string[];
  /** Deaths the messages name: a grouped message's headline count, or 1 for a single death alert. */
  namedDeaths: number;
  brakeDecisions: number;
  timedOut: boolean;
}

async function storm(brake: boolean): Promise<StormResult> {
  const label = `brake ${brake ? 'on' : 'off'}`;
  const base = mkdtempSync(join(tmpdir(), 'pit-bench-storm-'));
  const telegram = await startTelegramBotApi({ token: TOKEN });
  const driver = startLineChild(
    fileURLToPath(new URL('./lib/heartbeat-fleet.ts', import.meta.url)),
  );
  let daemon: PitDaemon | undefined;
  try {
    const { cells } = await driver.call<{
      cells: Array<{ uuid: string; dir: string; agents: string[] }>;
    }>({ cmd: 'provision', root: join(base, 'missions'), cells: CELLS, perCell: PER_CELL });
    await driver.stop();
    const names = cells.flatMap((cell) => cell.agents);
    const toml = [
      `# pit.toml of the revive-storm benchmark (${label}).`,
      '[daemon]',
      'state_dir = "state"',
      'stop_agents_on_exit = true',
      '[daemon.http]',
      'listen = "127.0.0.1:0"',
      '[bus]',
      'enabled = false',
      '[cells]',
      'root = "missions"',
      'heartbeat_stale_s = 10',
      'resurrect_after_s = 0        # revive at once (default 120 s)',
      '[checkpoints]',
      'interval_s = 0',
      '[policy.fleet_brake]',
      brake
        ? `enabled = true\nrestart_interval = "${BRAKE_INTERVAL}"   # default 10 s: ${AGENTS} agents would take ${AGENTS * 10} s`
        : 'enabled = false',
      '[telegram]',
      'token_env = "PIT_BENCH_TELEGRAM_TOKEN"',
      `chat_id = ${CHAT_ID}`,
      'approvers = [123456789]',
      `api_root = "${telegram.apiRoot}"`,
      'poll_timeout_seconds = 1',
      ...names.flatMap((name) => [
        `[agents.${name}]`,
        `argv = ["sh", ${JSON.stringify(AGENT_SCRIPT)}]`,
        'stop_grace_s = 2',
      ]),
      '',
    ].join('\n');
    const configPath = writeConfig(join(base, 'pit.toml'), toml);
    daemon = await startPitDaemon({
      configPath,
      cwd: base,
      http: true,
      env: { ...process.env, PIT_BENCH_TELEGRAM_TOKEN: TOKEN },
      readyTimeoutMs: 120_000,
    });
    const url = daemon.url!;
    type Status = { agents: Array<{ key: string; health: string; pid?: number }> };
    const status = async () =>
      (await (
        await fetch(`${url}/api/status`, { signal: AbortSignal.timeout(10_000) })
      ).json()) as Status;
    // Every agent started and healthy.
    const readyBy = Date.now() + 120_000;
    let current = await status();
    while (!(
      current.agents.length === AGENTS &&
      current.agents.every((agent) => agent.health === 'healthy' && agent.pid)
    )) {
      if (Date.now() > readyBy)
        throw new Error(
          `${label}: agents not all healthy: ${JSON.stringify(current.agents.map((agent) => agent.health))}`,
        );
      await sleep(500);
      current = await status();
    }
    for (const agent of current.agents) reapLater(agent.pid);
    const messagesBefore = telegram.calls.filter((call) => call.method === 'sendMessage').length;
    log(`${label}: ${AGENTS} agents healthy; killing them all`);

    // The storm: every agent's process group SIGKILLed, back to back.
    const killAt = Date.now();
    for (const agent of current.agents) killGroup(agent.pid!, 'SIGKILL');
    const killedAt = Date.now();

    // Until every agent has an agent_healthy after the kill.
    const keyOf = (cell: { uuid: string }, agent: string) => `${cell.uuid}/${agent}`;
    let timedOut = false;
    let healthyAt = new Map<string, number>();
    const deadline = Date.now() + STORM_TIMEOUT_MS;
    for (;;) {
      healthyAt = new Map();
      for (const cell of cells) {
        for (const event of events(join(cell.dir, 'logs', 'events.jsonl'))) {
          const at = Date.parse(event.ts);
          if (
            event.event === 'agent_healthy' &&
            at >= killAt &&
            !healthyAt.has(keyOf(cell, String(event.agent)))
          )
            healthyAt.set(keyOf(cell, String(event.agent)), at);
        }
      }
      if (healthyAt.size === AGENTS) break;
      if (Date.now() > deadline) {
        timedOut = true;
        break;
      }
      await sleep(250);
    }
    log(
      `${label}: ${healthyAt.size}/${AGENTS} healthy again after ${Math.max(...healthyAt.values()) - killAt} ms`,
    );
    await sleep(ALERT_GRACE_MS);
    const messages = telegram.calls
      .filter((call) => call.method === 'sendMessage')
      .slice(messagesBefore);
    const after = (await status()).agents;
    for (const agent of after) reapLater(agent.pid);

    const all = cells.flatMap((cell) =>
      events(join(cell.dir, 'logs', 'events.jsonl')).filter(
        (event) => Date.parse(event.ts) >= killAt,
      ),
    );
    const dead = all
      .filter((event) => event.event === 'agent_dead')
      .map((event) => Date.parse(event.ts));
    const revived = all
      .filter((event) => event.event === 'agent_revived')
      .map((event) => Date.parse(event.ts))
      .sort((a, b) => a - b);
    const perSecond = new Map<number, number>();
    for (const at of revived)
      perSecond.set(
        Math.floor((at - killAt) / 1000),
        (perSecond.get(Math.floor((at - killAt) / 1000)) ?? 0) + 1,
      );
    const healthyTimes = [...healthyAt.values()].map((at) => at - killAt);
    return {
      brake,
      allDeadMs: dead.length ? Math.max(...dead) - killAt : Number.NaN,
      allRevivedMs: revived.length ? revived.at(-1)! - killAt : Number.NaN,
      allHealthyMs: healthyTimes.length ? Math.max(...healthyTimes) : Number.NaN,
      healthyP50Ms: percentile(healthyTimes, 50),
      revivedSpanMs: revived.length ? revived.at(-1)! - revived[0]! : Number.NaN,
      maxRevivesPerSecond: Math.max(0, ...perSecond.values()),
      healthyCount: healthyAt.size,
      restarts: revived.length,
      telegramMessages: messages.length,
      telegramTexts: messages.map((call) =>
        String(call.params.text ?? '')
          .split('\n')[0]!
          .slice(0, 120),
      ),
      namedDeaths: messages.reduce((sum, call) => {
        const text = String(call.params.text ?? '');
        const grouped = /^\[pit\] (\d+) agents died/.exec(text);
        return sum + (grouped ? Number(grouped[1]) : text.startsWith('[pit] 💀') ? 1 : 0);
      }, 0),
      brakeDecisions: all.filter(
        (event) =>
          event.event === 'decision' &&
          /brake/i.test(`${String(event.rule)} ${String(event.reason)}`),
      ).length,
      timedOut: timedOut || killedAt - killAt > 1000,
    };
  } finally {
    await daemon?.stop(30_000).catch(() => undefined);
    await driver.stop().catch(() => undefined);
    await telegram.close().catch(() => undefined);
    reapAll();
    if (process.env.PIT_BENCH_KEEP === '1') log(`${label}: kept ${base}`);
    else rmSync(base, { recursive: true, force: true });
  }
}

try {
  const results = [await storm(false), await storm(true)];
  const rows: BenchRow[] = [];
  for (const result of results) {
    const label = `brake ${result.brake ? `on (restart_interval ${BRAKE_INTERVAL})` : 'off'}`;
    const complete = result.healthyCount === AGENTS && !result.timedOut;
    rows.push(
      {
        metric: `${label}: kill → every agent healthy again (${result.healthyCount}/${AGENTS})`,
        value: Math.round(result.allHealthyMs),
        unit: 'ms',
        target: `all ${AGENTS} healthy`,
        ok: complete,
      },
      {
        metric: `${label}: kill → healthy, p50 per agent`,
        value: Math.round(result.healthyP50Ms),
        unit: 'ms',
      },
      {
        metric: `${label}: kill → every death recorded (agent_dead)`,
        value: Math.round(result.allDeadMs),
        unit: 'ms',
      },
      {
        metric: `${label}: kill → last revive; first → last revive`,
        value: `${Math.round(result.allRevivedMs)}; ${Math.round(result.revivedSpanMs)}`,
        unit: 'ms',
      },
      {
        metric: `${label}: revives (agent_revived) / most in one second`,
        value: `${result.restarts} / ${result.maxRevivesPerSecond}`,
        unit: '',
        target: `${AGENTS} revives, each once`,
        ok: result.restarts === AGENTS,
      },
      {
        metric: `${label}: Telegram messages sent for the storm${result.telegramTexts.length ? ` (${result.telegramTexts.join(' | ')})` : ''}`,
        value: result.telegramMessages,
        unit: 'messages',
        target: '1 grouped alert per channel',
        ok: result.telegramMessages === 1,
      },
      {
        metric: `${label}: deaths the storm's messages name (headline counts)`,
        value: result.namedDeaths,
        unit: 'deaths',
        target: `${AGENTS}`,
        ok: result.namedDeaths === AGENTS,
      },
    );
    if (result.brake)
      rows.push({
        metric: `${label}: decisions naming the fleet brake`,
        value: result.brakeDecisions,
        unit: 'decisions',
        target: '> 0 (the brake engaged)',
        ok: result.brakeDecisions > 0,
      });
  }
  const notes = [
    `Machine: ${machineNote()}. The machine is shared with other engineers' test runs: numbers are noisy.`,
    `The real \`pit daemon\` (${PIT_MODE_NOTE}) started the ${AGENTS} agents itself (bench/fixtures/beat-agent.sh: sh, a heartbeat every 2 s) in ${CELLS} cells; config: resurrect_after_s = 0, heartbeat_stale_s = 10, policy defaults otherwise (first restart immediate, rollback before restart: no config files here); fleet brake off, or on with restart_interval = ${BRAKE_INTERVAL} (default 10 s, which would space ${AGENTS} revives over ${AGENTS * 10} s) and its default thresholds (more than 5 deaths within 2 min).`,
    `Times are from the cells' events.jsonl (1 ms resolution), counted from the first SIGKILL. [telegram] points at @pit/notify's local Bot API test server (api_root); every sendMessage it received after the kill is counted, until every agent is healthy again + ${ALERT_GRACE_MS / 1000} s. Restarted deaths page only as a storm (apps/daemon README, Alerts): one grouped message once the burst settles; deaths seen after it would go in a follow-up at most once per fleet_brake window (2 min), later than this bench looks, so the "deaths named" row says whether the one message named every agent.`,
  ].join(' ');
  emitResult({
    title: `revive storm: ${AGENTS} agents killed at once, fleet brake off and on${smoke ? ', smoke' : ''}`,
    rows,
    notes,
  });
} finally {
  reapAll();
}
