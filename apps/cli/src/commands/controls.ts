/**
 * `pit restart|stop|start|reset AGENT` and `pit reload`: an operator's controls. With a daemon
 * running they go through its HTTP API (the bearer token from `[daemon.http].token_env`), so it
 * acts at once; with none running they are recorded in the state directory (under its lock)
 * for the next `pit sweep --once` or daemon start (`recordControlOffline()` of @pit/daemon).
 */
import type { OperatorAction } from '@pit/cell-spec';
import { readDaemonLock, recordControlOffline, type PitConfig } from '@pit/daemon';
import { RefusedError, UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import type { CommandContext } from '../context.js';
import { daemonUrl } from './approvals.js';

/** What the daemon answered (the fields the CLI shows). */
export interface DaemonAnswer {
  ok?: boolean;
  message?: string;
  error?: string;
  candidates?: string[];
  pid?: number;
  agents?: number;
}

/**
 * POSTs to the running daemon with the operator's token (or the one `tokenEnv` names); refuses
 * on a missing or refused token.
 */
export async function postToDaemon(
  context: CommandContext,
  config: PitConfig,
  holderPid: number,
  path: string,
  body: Record<string, string>,
  tokenEnv: string = config.daemon.http.token_env,
): Promise<{ status: number; answer: DaemonAnswer }> {
  const token = context.environment.env[tokenEnv];
  if (!token)
    throw new UsageError(
      `a daemon is running (pid ${holderPid}): set ${tokenEnv} to its HTTP token to control it`,
    );
  const url = `${await daemonUrl(config)}${path}`;
  const response = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  }).catch((error: Error) => {
    throw new RefusedError(`cannot reach the daemon at ${url}: ${error.message}`);
  });
  const answer = (await response.json().catch(() => ({}))) as DaemonAnswer;
  if (response.status === 401 || response.status === 403)
    throw new RefusedError(`the daemon refused the token in ${tokenEnv} (${response.status})`);
  return { status: response.status, answer };
}

/**
 * `pit restart|stop|start|reset AGENT [--reason R]`. AGENT is `name`, or `cell/name` (a cell
 * uuid or unique prefix, or a mission) when the name is in several cells. Exit 1 when refused.
 */
export async function control(
  context: CommandContext,
  action: OperatorAction,
  ref: string,
  options: { reason?: string; json?: boolean },
): Promise<number> {
  const { config } = await context.config();
  const holder = await readDaemonLock(config.daemon.state_dir).catch(() => undefined);
  let result: { ok: boolean; message: string; via: 'daemon' | 'state' };
  if (holder) {
    const { status, answer } = await postToDaemon(
      context,
      config,
      holder.pid,
      `/api/agents/${encodeURIComponent(ref)}/${action}`,
      options.reason ? { reason: options.reason } : {},
    );
    result = {
      ok: status === 200,
      message: answer.message ?? answer.error ?? `HTTP ${status}`,
      via: 'daemon',
    };
  } else {
    const recorded = await recordControlOffline({
      config,
      ref,
      action,
      by: `${context.actor} (cli)`,
      ...(options.reason ? { reason: options.reason } : {}),
    });
    result = {
      ok: recorded.ok,
      message:
        !recorded.ok && recorded.reason === 'locked'
          ? `a daemon or a sweep holds the state directory (${recorded.message}); try again`
          : recorded.message,
      via: 'state',
    };
  }
  if (options.json) context.output.out(JSON.stringify({ action, agent: ref, ...result }, null, 2));
  if (!result.ok) throw new RefusedError(`${action} ${ref}: ${result.message}`);
  if (!options.json) context.output.out(result.message);
  return EXIT.ok;
}

/** `pit reload`: the running daemon re-reads its config (what SIGHUP does); with none running, nothing to do. */
export async function reload(
  context: CommandContext,
  options: { json?: boolean },
): Promise<number> {
  const { config } = await context.config();
  const holder = await readDaemonLock(config.daemon.state_dir).catch(() => undefined);
  if (!holder) {
    const message =
      'no daemon is running: nothing to reload (the next `pit sweep --once` or daemon start reads the config as it is)';
    context.output.out(
      options.json ? JSON.stringify({ ok: true, reloaded: false, message }) : message,
    );
    return EXIT.ok;
  }
  const { status, answer } = await postToDaemon(context, config, holder.pid, '/api/reload', {});
  if (options.json)
    context.output.out(JSON.stringify({ reloaded: status === 200, ...answer }, null, 2));
  if (status !== 200)
    throw new RefusedError(
      `reload refused: ${answer.error ?? `HTTP ${status}`} (the old config stays in force)`,
    );
  if (!options.json) context.output.out(`config reloaded: ${answer.agents ?? 0} agents supervised`);
  return EXIT.ok;
}
