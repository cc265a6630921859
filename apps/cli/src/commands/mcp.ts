/**
 * `pit mcp`: the Pit's MCP server over stdio, for an agent harness that spawns it. Reads come
 * from the files (as `pit status`, `pit why`, `pit logs` read them: with or without a daemon);
 * actions (`[mcp] actions = true`, and `--as APPROVER` with that approver's token in the variable
 * its `token_env` names) go through the running daemon's HTTP API under the approver's token. The
 * caller's own agent (`LAZARUS_AGENT`, `LAZARUS_CELL_UUID`, set by the daemon for every agent)
 * is never acted on. Nothing but the protocol is written to stdout; notices go to stderr.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { AgentNameSchema, CellUuidSchema } from '@pit/cell-spec';
import {
  mergesStderr,
  createLogger,
  readApprovals,
  readDaemonLock,
  readFleetStatus,
  type PitConfig,
} from '@pit/daemon';
import {
  createPitMcpServer,
  type McpActionResult,
  type McpBackend,
  type McpCaller,
} from '@pit/daemon/mcp';
import { RefusedError, UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import type { CommandContext } from '../context.js';
import { cliVersion } from '../version.js';
import { postToDaemon } from './controls.js';

/** Options of `pit mcp`. */
export interface McpOptions {
  /** The approver the harness acts as (`[daemon.http.approvers.<name>]`). */
  as?: string;
}

/**
 * Serves MCP on stdin/stdout until the client closes stdin (or the process is interrupted).
 * @throws {UsageError} when `--as` names no approver or its token variable is unset.
 */
export async function mcp(context: CommandContext, options: McpOptions): Promise<number> {
  const loaded = await context.config();
  const { config } = loaded;
  const env = context.environment.env;
  const caller = stdioCaller(config, env, options.as);
  if (options.as !== undefined && !config.mcp.actions)
    context.output.err(
      `pit mcp: --as ${options.as}: [mcp] actions is off in ${loaded.path ?? 'the config'}: serving the read-only tools only`,
    );
  const logger = createLogger({ level: 'warn', format: 'json', stream: process.stderr });
  const server = createPitMcpServer({
    backend: fileBackend(context, config, options.as),
    caller,
    actions: config.mcp.actions,
    logger,
    version: cliVersion(),
  });
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    process.stdin.once('end', () => resolve());
  });
  await server.connect(transport);
  await closed;
  await server.close();
  return EXIT.ok;
}

/** The caller over stdio: the approver `--as` names (its token set), and the agent the env says. */
function stdioCaller(config: PitConfig, env: NodeJS.ProcessEnv, as: string | undefined): McpCaller {
  const agentName = env.LAZARUS_AGENT;
  const cell = env.LAZARUS_CELL_UUID;
  const agent =
    agentName && AgentNameSchema.safeParse(agentName).success
      ? {
          name: agentName,
          ...(cell && CellUuidSchema.safeParse(cell).success ? { cell } : {}),
        }
      : undefined;
  if (as === undefined) return { approver: false, via: 'stdio', ...(agent ? { agent } : {}) };
  const approver = config.daemon.http.approvers[as];
  if (!approver)
    throw new UsageError(
      `--as ${as}: no such approver in [daemon.http.approvers] (configured: ${Object.keys(config.daemon.http.approvers).join(', ') || 'none'})`,
    );
  if (!env[approver.token_env])
    throw new UsageError(
      `--as ${as}: set ${approver.token_env} to ${as}'s token (the daemon checks it on every action)`,
    );
  return { identity: as, approver: true, via: 'stdio', ...(agent ? { agent } : {}) };
}

/** Reads from the files; acts through the running daemon under the approver's token. */
function fileBackend(
  context: CommandContext,
  config: PitConfig,
  as: string | undefined,
): McpBackend {
  const tokenEnv = as === undefined ? undefined : config.daemon.http.approvers[as]?.token_env;
  const post = async (path: string, body: Record<string, string>): Promise<McpActionResult> => {
    if (tokenEnv === undefined) return { ok: false, message: 'no approver identity (--as)' };
    const holder = await readDaemonLock(config.daemon.state_dir).catch(() => undefined);
    if (!holder)
      return {
        ok: false,
        message:
          'no daemon is running: actions over MCP go through the daemon, which checks the token and acts at once',
      };
    try {
      const { status, answer } = await postToDaemon(
        context,
        config,
        holder.pid,
        path,
        body,
        tokenEnv,
      );
      return status === 200
        ? { ok: true, message: answer.message ?? 'done: the daemon acts on it now' }
        : { ok: false, message: answer.message ?? answer.error ?? `HTTP ${status}` };
    } catch (error) {
      if (error instanceof RefusedError || error instanceof UsageError)
        return { ok: false, message: error.message };
      throw error;
    }
  };
  return {
    cellsRoot: config.cells.root,
    stateDir: config.daemon.state_dir,
    configAgents: Object.keys(config.agents),
    mergesStderr: (agent) => mergesStderr(config, agent),
    status: async () => (await readFleetStatus(config)).status,
    approvals: () => readApprovals(config.daemon.state_dir),
    decideApproval: (id, decision, answer) =>
      post(
        `/api/approvals/${encodeURIComponent(id)}/${decision}`,
        answer.reason ? { reason: answer.reason } : {},
      ),
    control: (ref, action, request) =>
      post(
        `/api/agents/${encodeURIComponent(ref)}/${action}`,
        request.reason ? { reason: request.reason } : {},
      ),
  };
}
