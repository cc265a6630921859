/**
 * The daemon's lifecycle: `runDaemon` (config, lock, channels, supervisor, HTTP, daemon.json,
 * signals, reload and graceful stop) and `sweepOnce` (one locked check, then exit). It wires
 * the modules together and owns startup order and shutdown order; it decides nothing about agents.
 */
import { homedir } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { join } from 'node:path';
import { appendEvent, PitError } from '@pit/cell-spec';
import { loadConfig, type LoadedConfig } from './config.js';
import { applyConfigOverrides, type ConfigOverrides } from './config-overrides.js';
import { createBusHub, type BusHub } from './bus-hub.js';
import type { ClusterMember } from './cluster/cluster-member.js';
import type { PitConfig } from './config-schema.js';
import { DaemonError } from './errors.js';
import { startChannels, type Channels } from './channels.js';
import { readAgentLogTail, readRecentEvents } from './dashboard-data.js';
import { DASHBOARD_HTML } from './dashboard.js';
import { removeDaemonFile, writeDaemonFile } from './daemon-file.js';
import { createCellEventFeed } from './event-feed.js';
import { startHttpServer, type HttpServer } from './http.js';
import { assertListenAllowed, httpCredentials, httpWarnings } from './http-access.js';
import { acquireDaemonLock, type DaemonLock } from './lock.js';
import type { McpHttpHandler } from './mcp-http.js';
import { createLogger, type DaemonLogger, type Logger, type LoggerOptions } from './logger.js';
import { createMetricsRegistry, type MetricsRegistry } from './metrics.js';
import { createNotifier, type Notifier } from './notifier.js';
import {
  createSupervisor,
  type StopOutcome,
  type Supervisor,
  type SweepReport,
} from './supervisor.js';

/** Options of {@link runDaemon} and {@link sweepOnce}. */
export interface DaemonOptions {
  /** `--config`. */
  configPath?: string;
  /** The environment (PIT_CONFIG, the HTTP token, agents' `env_from`). @default process.env */
  env?: NodeJS.ProcessEnv;
  /** @default process.cwd() */
  cwd?: string;
  /** @default os.homedir() */
  home?: string;
  /** Decide and record, but start, stop and roll back nothing. @default false */
  dryRun?: boolean;
  /** Where log lines go, and in which format. @default stderr, pretty when a TTY */
  log?: Pick<LoggerOptions, 'stream' | 'format'>;
  /** Overrides `[daemon].log_level`. */
  logLevel?: LoggerOptions['level'];
  /** Command-line settings laid over the config at every load and reload (see ./config-overrides.ts). */
  overrides?: ConfigOverrides;
}

/** Options of {@link runDaemon}. */
export interface RunDaemonOptions extends DaemonOptions {
  /** Stop every agent on SIGTERM/SIGINT (normally they keep running). @default `[daemon].stop_agents_on_exit` */
  stopAgentsOnExit?: boolean;
  /** Install SIGHUP (reload) and SIGTERM/SIGINT (shutdown) handlers. @default true */
  handleSignals?: boolean;
  /** Overrides `[daemon.http].listen` (e.g. `127.0.0.1:0` in tests). */
  listen?: string;
  /** Overrides `[bus].listen`. */
  busListen?: string;
}

/** The outcome of a reload. */
export type ReloadResult = { ok: true; agents: number } | { ok: false; error: string };

/** A running daemon. */
export interface DaemonHandle {
  /** The dashboard/API URL, when HTTP is enabled. */
  url: string | undefined;
  /** The mission bus WebSocket URL, when `[bus]` is enabled. */
  busUrl: string | undefined;
  pid: number;
  loaded: LoadedConfig;
  supervisor: Supervisor;
  logger: DaemonLogger;
  /** Re-reads the config (what SIGHUP does); an invalid one is rejected and the old one stays. */
  reload(): Promise<ReloadResult>;
  /**
   * Stops probing, flushes state and logs, releases the lock; agents keep running unless asked.
   * Resolves with the agents it stopped and those it left running.
   */
  stop(options?: { stopAgents?: boolean }): Promise<StopOutcome>;
  /**
   * Settles once the daemon has stopped (after SIGTERM/SIGINT or {@link DaemonHandle.stop}),
   * with what it stopped and left running. Nothing of the daemon's keeps the process alive
   * after that: agents left running are detached.
   */
  done: Promise<StopOutcome>;
}

const locate = (options: DaemonOptions) => {
  const env = options.env ?? process.env;
  return {
    ...(options.configPath ? { flag: options.configPath } : {}),
    env,
    cwd: options.cwd ?? process.cwd(),
    home: options.home ?? (env.HOME || homedir()),
  };
};

/**
 * Runs the daemon in the foreground: loads the config, takes the state directory's lock,
 * writes the pid file, starts the supervision loop and the HTTP server, and handles SIGHUP
 * (reload) and SIGTERM/SIGINT (graceful stop). Resolves once it is running.
 * @throws {DaemonError} DAEMON_CONFIG_* (bad config), DAEMON_LOCKED (another daemon holds the state dir), DAEMON_HTTP.
 * @example
 * const daemon = await runDaemon({ configPath: 'pit.toml' });
 * console.error(`dashboard: ${daemon.url}`);
 * await daemon.done;
 */
export async function runDaemon(options: RunDaemonOptions = {}): Promise<DaemonHandle> {
  const env = options.env ?? process.env;
  const state: DaemonState = {
    loaded: applyConfigOverrides(await loadConfig(locate(options)), options.overrides),
  };
  const http = state.loaded.config.daemon.http;
  if (http.enabled) {
    // Refused before anything starts: an exposed listen without allow_remote, a short or shared token.
    assertListenAllowed(options.listen ?? http.listen, http.allow_remote);
    httpCredentials(http, env);
  }
  const logger = createDaemonLogger(options, state.loaded);
  // The process is the daemon's (as with its signal handlers): its heap is sized for a daemon.
  if (options.handleSignals ?? true) tuneHeap(state.loaded.config.daemon.heap_growth_percent);
  const lock = await takeLock(state.loaded, logger);
  const late: LateHandlers = {};
  const services = await startServices({ options, env, state, logger, lock, late });

  let resolveDone!: (outcome: StopOutcome) => void;
  const done = new Promise<StopOutcome>((resolve) => (resolveDone = resolve));
  const signals: Array<[NodeJS.Signals, () => void]> = [];
  const stop = createStop({
    options,
    state,
    logger,
    lock,
    services,
    signals,
    onStopped: (outcome) => resolveDone(outcome),
  });
  const reload = (by = 'signal', via = 'signal') =>
    reloadConfig({ options, env, state, logger, services }).then(async (result) => {
      await recordReload(state.loaded.config.daemon.state_dir, { by, via, result }, logger);
      return result;
    });
  late.reload = reload;
  if (options.handleSignals ?? true) installSignals(signals, () => reload(), stop);
  // Said once SIGTERM and SIGINT stop it gracefully: whoever reads "running" may signal it at once
  // (a signal with no handler yet would kill the process outright).
  logger.info('pit daemon running', {
    pid: process.pid,
    config: state.loaded.path ?? '(embedded default)',
    state_dir: state.loaded.config.daemon.state_dir,
    url: services.http?.url,
    bus: services.busHub?.url,
    dry_run: options.dryRun ?? false,
  });

  return {
    url: services.http?.url,
    busUrl: services.busHub?.url,
    pid: process.pid,
    get loaded() {
      return state.loaded;
    },
    supervisor: services.supervisor,
    logger,
    reload,
    stop,
    done,
  };
}

/** The config in force; a reload replaces it. */
interface DaemonState {
  loaded: LoadedConfig;
}

/** What a running daemon has started, and stops in reverse. */
interface DaemonServices {
  supervisor: Supervisor;
  http: HttpServer | undefined;
  busHub: BusHub | undefined;
  channels: Channels | undefined;
  notifier: Notifier | undefined;
  /** This daemon's membership of its cluster (`[cluster]`). */
  cluster: ClusterMember | undefined;
}

/** What the HTTP handlers call that exists only once the daemon runs. */
interface LateHandlers {
  /** The daemon's reload (what SIGHUP and `POST /api/reload` call). */
  reload?: (by?: string, via?: string) => Promise<ReloadResult>;
}

/** What the startup steps after the lock share. */
interface StartContext {
  options: RunDaemonOptions;
  env: NodeJS.ProcessEnv;
  state: DaemonState;
  logger: DaemonLogger;
  lock: DaemonLock;
  late: LateHandlers;
}

/** The daemon's logger, at the configured level, and the deprecated-key warnings. */
function createDaemonLogger(options: RunDaemonOptions, loaded: LoadedConfig): DaemonLogger {
  const logger = createLogger({
    level: options.logLevel ?? loaded.config.daemon.log_level,
    secrets: loaded.secrets,
    ...(loaded.config.daemon.log_file ? { file: loaded.config.daemon.log_file } : {}),
    ...options.log,
  });
  warnDeprecatedKeys(logger, loaded);
  return logger;
}

/**
 * Takes the state directory's and the cells root's locks (and the pid file), taking over a
 * stale one with a warning.
 */
async function takeLock(loaded: LoadedConfig, logger: Logger): Promise<DaemonLock> {
  return acquireDaemonLock(loaded.config.daemon.state_dir, {
    cellsRoot: loaded.config.cells.root,
    ...(loaded.config.daemon.pid_file ? { pidFile: loaded.config.daemon.pid_file } : {}),
    onStale: (holder) => logger.warn('took over a stale lock', { previous_pid: holder?.pid }),
  });
}

/**
 * Starts the bus, the channels, the supervisor and the HTTP server, and writes daemon.json.
 * The HTTP server listens before the supervision loop starts any agent, so a busy port fails
 * with nothing started. When a step fails, what has started is closed (the supervisor stopped,
 * its agents too when the daemon stops them on exit) and the lock released before rethrowing.
 */
async function startServices(context: StartContext): Promise<DaemonServices> {
  const { options, env, logger, lock } = context;
  const { loaded } = context.state;
  const metrics = createMetricsRegistry();
  let http: HttpServer | undefined;
  let busHub: BusHub | undefined;
  let channels: Channels | undefined;
  let supervisor: Supervisor | undefined;
  let cluster: ClusterMember | undefined;
  const startedAt = Date.now();
  try {
    if (loaded.config.bus.enabled && !options.dryRun) {
      const section = options.dryRun ? undefined : loaded.config.cluster;
      const token = section ? clusterToken(section, env) : undefined;
      busHub = await createBusHub({
        listen: options.busListen ?? loaded.config.bus.listen,
        stateDir: loaded.config.daemon.state_dir,
        logger,
        ...(loaded.config.bus.roles ? { roles: loaded.config.bus.roles } : {}),
        // Clustered: the buses' events in replicated JetStream streams, and writes fenced by epoch
        // (the member joins just below; until then no agent runs, so no epoch is held).
        ...(section
          ? {
              cluster: {
                servers: section.servers,
                hostId: section.host_id,
                replicas: section.replicas,
                ...(token ? { token } : {}),
                epochOf: (key: string) => cluster?.epochOf(key),
              },
            }
          : {}),
      }).catch((error: unknown) => {
        if (!section) throw error;
        throw new DaemonError(
          'DAEMON_CLUSTER',
          error instanceof Error ? error.message : String(error),
          { cause: error },
        );
      });
    }
    cluster = await joinConfiguredCluster(loaded.config, env, logger, options.dryRun ?? false);
    channels = await startChannels(loaded.config, env, logger, cluster ? { cluster } : {});
    const notifier = createNotifier(loaded.config, env, logger, channels.alerts);
    supervisor = await createSupervisor({
      config: loaded.config,
      policyInput: loaded.policyInput,
      env,
      logger,
      metrics,
      dryRun: options.dryRun ?? false,
      notifier,
      approvalChannels: channels.approvals,
      ...(busHub ? { busHub } : {}),
      ...(cluster ? { cluster } : {}),
    });
    if (loaded.config.daemon.http.enabled)
      http = await startDaemonHttp({ ...context, supervisor, metrics, startedAt });
    await supervisor.start();
    // Where this daemon listens (the real port when configured as :0), for `pit approve` and friends.
    await writeDaemonFile(loaded.config.daemon.state_dir, {
      pid: process.pid,
      ...(http ? { url: http.url } : {}),
      ...(busHub ? { bus_url: busHub.url } : {}),
      started_at: new Date(startedAt).toISOString(),
    });
    return { supervisor, http, busHub, channels, notifier, cluster };
  } catch (error) {
    await http?.close().catch(() => undefined);
    const stopAgents =
      cluster !== undefined ||
      (options.stopAgentsOnExit ?? loaded.config.daemon.stop_agents_on_exit);
    await supervisor?.stop({ stopAgents }).catch(() => undefined);
    await cluster?.close().catch(() => undefined);
    await channels?.stop().catch(() => undefined);
    await busHub?.close().catch(() => undefined);
    await lock.release();
    throw error;
  }
}

/** Starts the HTTP server on the supervisor's data; warns when approvals over HTTP are off. */
async function startDaemonHttp(
  context: StartContext & { supervisor: Supervisor; metrics: MetricsRegistry; startedAt: number },
): Promise<HttpServer> {
  const { options, env, state, logger, supervisor, metrics, startedAt } = context;
  const { config } = state.loaded;
  const settings = config.daemon.http;
  const listen = options.listen ?? settings.listen;
  assertListenAllowed(listen, settings.allow_remote);
  const http = await startHttpServer({
    listen,
    credentials: httpCredentials(settings, env),
    allowedHosts: settings.allowed_hosts,
    maxConnections: settings.max_connections,
    maxConnectionsPerAddress: settings.max_connections_per_address,
    maxEventStreams: settings.max_event_streams,
    maxEventStreamsPerAddress: settings.max_event_streams_per_address,
    headerTimeoutMs: settings.header_timeout_s * 1000,
    idleTimeoutMs: settings.idle_timeout_s * 1000,
    keepAliveMs: Math.min(15_000, (settings.idle_timeout_s * 1000) / 2),
    logger,
    handlers: {
      health: () => ({
        ...supervisor.health(),
        pid: process.pid,
        uptime_s: Math.round((Date.now() - startedAt) / 1000),
        config: state.loaded.path ?? '(embedded default)',
      }),
      status: () => supervisor.status(),
      metrics,
      events: createCellEventFeed({ cellsRoot: config.cells.root, logger }),
      decideApproval: (id, decision, body) =>
        supervisor.decideApproval(id, decision, { ...body, channel: 'http' }),
      control: (ref, action, body) =>
        supervisor.control(ref, action, {
          by: body.by,
          via: 'http',
          ...(body.reason ? { reason: body.reason } : {}),
        }),
      reload: async (by) =>
        context.late.reload
          ? context.late.reload(by, 'http')
          : { ok: false, error: 'the daemon is still starting' },
      dashboard: () => DASHBOARD_HTML,
      recentEvents: (sinceMs) =>
        readRecentEvents({ cellsRoot: state.loaded.config.cells.root, sinceMs }),
      agentLog: (ref, lines) =>
        readAgentLogTail({
          cellsRoot: state.loaded.config.cells.root,
          stateDir: state.loaded.config.daemon.state_dir,
          ref,
          lines,
        }),
      mcp: lazyMcpHandler(async () => {
        const { createMcpHttpHandler, daemonMcpBackend } = await import('./mcp-http.js');
        return createMcpHttpHandler({
          backend: daemonMcpBackend(supervisor, () => state.loaded.config),
          config: () => state.loaded.config,
          logger,
        });
      }),
    },
  });
  if (!env[settings.token_env])
    logger.warn(
      `${settings.token_env} is not set: the operator cannot answer approvals over HTTP${Object.keys(settings.approvers).length > 0 ? ' (named approvers can)' : ''}`,
    );
  for (const warning of httpWarnings(settings)) logger.warn(warning);
  return http;
}

/**
 * The daemon's stop, run once however often it is called: removes the signal handlers, closes
 * HTTP, stops the supervisor, flushes the notifier, closes channels and bus, removes daemon.json
 * and releases the lock.
 */
function createStop(context: {
  options: RunDaemonOptions;
  state: DaemonState;
  logger: DaemonLogger;
  lock: DaemonLock;
  services: DaemonServices;
  signals: Array<[NodeJS.Signals, () => void]>;
  onStopped: (outcome: StopOutcome) => void;
}): DaemonHandle['stop'] {
  const { options, state, logger, lock, services, signals } = context;
  let stopping: Promise<StopOutcome> | undefined;
  return (stopOptions: { stopAgents?: boolean } = {}) => {
    stopping ??= (async () => {
      // A clustered daemon always stops its agents: its peers take them over once it has left,
      // and agents left running would then run twice.
      const stopAgents =
        services.cluster !== undefined ||
        (stopOptions.stopAgents ??
          options.stopAgentsOnExit ??
          state.loaded.config.daemon.stop_agents_on_exit);
      logger.info('stopping the daemon', { stop_agents: stopAgents });
      for (const [signal, handler] of signals) process.off(signal, handler);
      await services.http?.close();
      const outcome = await services.supervisor.stop({ stopAgents });
      await services.cluster
        ?.close()
        .catch((error: unknown) =>
          logger.warn('cannot leave the cluster cleanly', { error: String(error) }),
        );
      // Deaths held for a storm's next message go out before the channels close.
      await services.notifier?.close?.();
      await services.channels?.stop();
      await services.busHub?.close();
      await removeDaemonFile(state.loaded.config.daemon.state_dir, process.pid).catch(
        (error: unknown) => logger.warn('cannot remove daemon.json', { error: String(error) }),
      );
      await lock.release();
      // What outlives the daemon, by name and pid (the next daemon or sweep adopts them).
      const named = (list: StopOutcome['stopped']) =>
        list.map(({ agent, pid }) => `${agent} (pid ${pid})`);
      logger.info('daemon stopped', {
        left_running: named(outcome.leftRunning),
        ...(outcome.stopped.length > 0 ? { stopped: named(outcome.stopped) } : {}),
      });
      context.onStopped(outcome);
      return outcome;
    })();
    return stopping;
  };
}

/**
 * Re-reads the config (what SIGHUP does) and puts it in force; an invalid one is logged and
 * rejected, and the old one stays. Sections only a restart applies are named in a warning.
 */
async function reloadConfig(context: {
  options: RunDaemonOptions;
  env: NodeJS.ProcessEnv;
  state: DaemonState;
  logger: DaemonLogger;
  services: DaemonServices;
}): Promise<ReloadResult> {
  const { options, env, state, logger, services } = context;
  try {
    const next = applyConfigOverrides(await loadConfig(locate(options)), options.overrides);
    const current = state.loaded.config;
    if (next.config.daemon.state_dir !== current.daemon.state_dir) {
      throw new Error(
        `daemon.state_dir cannot change while running (${current.daemon.state_dir} → ${next.config.daemon.state_dir}); restart the daemon`,
      );
    }
    const needsRestart: string[] = (['telegram', 'nostr', 'issues', 'bus'] as const).filter(
      (section) => JSON.stringify(next.config[section]) !== JSON.stringify(current[section]),
    );
    // Tokens, approvers and allowed hosts apply at once; the server's address and limits at a restart.
    const restartKeys = [
      'enabled',
      'listen',
      'allow_remote',
      'max_connections',
      'max_connections_per_address',
      'max_event_streams',
      'max_event_streams_per_address',
      'header_timeout_s',
      'idle_timeout_s',
    ] as const;
    if (restartKeys.some((key) => next.config.daemon.http[key] !== current.daemon.http[key]))
      needsRestart.push('daemon.http');
    if (needsRestart.length > 0)
      logger.warn('these sections changed and take effect after a restart of the daemon', {
        sections: needsRestart,
      });
    const nextHttp = next.config.daemon.http;
    // A short or shared token refuses the whole new config: the old tokens stay in force.
    const credentials = services.http ? httpCredentials(nextHttp, env) : [];
    logger.addSecrets(next.secrets);
    warnDeprecatedKeys(logger, next);
    logger.setLevel(options.logLevel ?? next.config.daemon.log_level);
    if (options.handleSignals ?? true) tuneHeap(next.config.daemon.heap_growth_percent);
    await services.supervisor.reload(next.config, next.policyInput);
    services.http?.setAccess({ credentials, allowedHosts: nextHttp.allowed_hosts });
    state.loaded = next;
    const agents = (await services.supervisor.status()).agents.length;
    logger.info('config reloaded', { config: next.path ?? '(embedded default)', agents });
    return { ok: true, agents };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    logger.error('new config rejected; the old one stays in force', {
      error: message,
      ...(PitError.is(error) ? { code: error.code } : {}),
    });
    return { ok: false, error: message };
  }
}

/** Writes a reload (SIGHUP, `pit reload`) as a `config_reloaded` event in the host log. */
async function recordReload(
  stateDir: string,
  reload: { by: string; via: string; result: ReloadResult },
  logger: Logger,
): Promise<void> {
  const { result } = reload;
  await appendEvent(join(stateDir, 'logs', 'events.jsonl'), {
    event: 'config_reloaded',
    by: reload.by,
    via: reload.via,
    ok: result.ok,
    ...(result.ok ? { agents: result.agents } : { error: result.error.slice(0, 2000) }),
  }).catch((error: unknown) =>
    logger.warn('cannot record the reload in the event log', { error: String(error) }),
  );
}

/** SIGHUP reloads; SIGTERM and SIGINT stop. The handlers are recorded so stop can remove them. */
function installSignals(
  signals: Array<[NodeJS.Signals, () => void]>,
  reload: () => Promise<ReloadResult>,
  stop: () => Promise<StopOutcome>,
): void {
  const onHup = () => void reload();
  const onStop = () => void stop();
  signals.push(['SIGHUP', onHup], ['SIGTERM', onStop], ['SIGINT', onStop]);
  for (const [signal, handler] of signals) process.on(signal, handler);
}

/**
 * One full check and the actions it calls for, then exit (for cron: `pit sweep --once`).
 * Takes the state directory's and the cells root's locks, so it never runs beside a daemon
 * (of this state directory or any other over the same cells); uses the same code and
 * persisted state as the daemon, so consecutive runs continue each other (dead time accumulates,
 * nothing is revived twice).
 * @returns the report; `healthy` is the exit status of `pit sweep --once` (0 when true).
 * @throws {DaemonError} DAEMON_CONFIG_*, DAEMON_LOCKED (a daemon is running: it already supervises).
 * @example
 * const report = await sweepOnce({ configPath: '/etc/pit/pit.toml' });
 * process.exitCode = report.healthy ? 0 : 1;
 */
export async function sweepOnce(options: DaemonOptions = {}): Promise<SweepReport> {
  const env = options.env ?? process.env;
  const loaded = applyConfigOverrides(await loadConfig(locate(options)), options.overrides);
  const logger = createLogger({
    level: options.logLevel ?? loaded.config.daemon.log_level,
    secrets: loaded.secrets,
    ...options.log,
  });
  warnDeprecatedKeys(logger, loaded);
  if (loaded.config.cluster)
    throw new DaemonError(
      'DAEMON_CLUSTER',
      `${loaded.path ?? 'the config'}: [cluster] is set: a one-shot sweep would start agents without the cluster's claim; run \`pit daemon\` on each host instead`,
    );
  const lock = await acquireDaemonLock(loaded.config.daemon.state_dir, {
    cellsRoot: loaded.config.cells.root,
  });
  try {
    const supervisor = await createSupervisor({
      config: loaded.config,
      policyInput: loaded.policyInput,
      env,
      logger,
      dryRun: options.dryRun ?? false,
      notifier: createNotifier(loaded.config, env, logger),
    });
    const report = await supervisor.sweep();
    await supervisor.stop({ stopAgents: false });
    return report;
  } finally {
    await lock.release();
  }
}

/**
 * The NATS token `[cluster] token_env` names (undefined when it names none).
 * @throws {DaemonError} DAEMON_CLUSTER when it names a variable that is not set.
 */
function clusterToken(
  section: NonNullable<PitConfig['cluster']>,
  env: NodeJS.ProcessEnv,
): string | undefined {
  const token = section.token_env ? env[section.token_env] : undefined;
  if (section.token_env && !token)
    throw new DaemonError(
      'DAEMON_CLUSTER',
      `[cluster] token_env names ${section.token_env}, which is not set in the daemon's environment`,
    );
  return token;
}

/**
 * `[daemon] heap_growth_percent`: how far V8 lets the heap grow past its live objects before a
 * full collection (0: V8's own rule). V8 reads the flag each time it sets the next limit, so it
 * applies from the next collection on, and a reload may change it.
 */
export function tuneHeap(percent: number): void {
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/**
 * Joins the cluster `[cluster]` names (nothing without it, or in a dry run, which starts nothing).
 * @throws {DaemonError} DAEMON_CLUSTER when its token variable is unset or NATS cannot be reached.
 */
async function joinConfiguredCluster(
  config: PitConfig,
  env: NodeJS.ProcessEnv,
  logger: Logger,
  dryRun: boolean,
): Promise<ClusterMember | undefined> {
  const section = config.cluster;
  if (!section || dryRun) return undefined;
  const token = clusterToken(section, env);
  try {
    // Loaded only for a cluster: the NATS client stays out of every other daemon and CLI run.
    const { joinCluster } = await import('./cluster/cluster-member.js');
    return await joinCluster({
      servers: section.servers,
      hostId: section.host_id,
      leaseMs: section.lease_s * 1000,
      replicas: section.replicas,
      onPartition: section.on_partition,
      recordsRetentionMs: section.records_retention_days * 24 * 60 * 60 * 1000,
      logger,
      ...(token ? { token } : {}),
    });
  } catch (error) {
    throw new DaemonError(
      'DAEMON_CLUSTER',
      `[cluster] cannot join through ${section.servers.join(', ')}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/**
 * Says, once per load, which older config keys are set and what to write instead, and which
 * agents' `env` or `argv` values look like secrets (the values themselves are never logged).
 */
function warnDeprecatedKeys(logger: Logger, loaded: LoadedConfig): void {
  for (const notice of loaded.notices) logger.warn('deprecated config key', { notice });
  for (const warning of loaded.warnings)
    logger.warn('config value looks like a secret; use env_from', { warning });
}

/**
 * The `/mcp` handler, made on the first request: the MCP SDK (~17 MB of resident memory at load) is
 * loaded only by a daemon that is asked for MCP.
 */
function lazyMcpHandler(make: () => Promise<McpHttpHandler>): McpHttpHandler {
  let handler: Promise<McpHttpHandler> | undefined;
  return async (request, response, access) => {
    handler ??= make().catch((error: unknown) => {
      handler = undefined;
      throw error;
    });
    return (await handler)(request, response, access);
  };
}
