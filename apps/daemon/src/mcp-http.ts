/**
 * The daemon's MCP endpoint, `/mcp` on its HTTP listener (Streamable HTTP, stateless, JSON
 * answers): the `Origin` check (a browser page of another origin is refused, 403), the bearer
 * token (the same credentials as the rest of the API: 401 without one), the caller it makes of
 * the token's identity (an approver, and the agent an approver is bound to), and the backend
 * over the running supervisor. One MCP server per request, built for that caller. http.ts only
 * routes `/mcp` here; the Host check has run before.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { readApprovals } from './approvals.js';
import { mergesStderr, type PitConfig } from './config-schema.js';
import { authorize, isAllowedHost, type Credential } from './http-access.js';
import type { Logger } from './logger.js';
import { createPitMcpServer, type McpBackend, type McpCaller } from './mcp-server.js';
import type { Supervisor } from './supervisor-api.js';

/** The largest MCP request body read (bytes). */
const MAX_MCP_BODY_BYTES = 64 * 1024;

/** Who may call, as http.ts holds it at the time of the request. */
export interface McpAccess {
  credentials: readonly Credential[];
  allowedHosts: readonly string[];
  /** The port the server listens on. */
  port: number;
}

/** Serves one request to `/mcp`. */
export type McpHttpHandler = (
  request: IncomingMessage,
  response: ServerResponse,
  access: McpAccess,
) => Promise<void>;

/** The backend of the daemon's MCP server: the live supervisor, the state directory's files. */
export function daemonMcpBackend(supervisor: Supervisor, config: () => PitConfig): McpBackend {
  return {
    get cellsRoot() {
      return config().cells.root;
    },
    get stateDir() {
      return config().daemon.state_dir;
    },
    get configAgents() {
      return Object.keys(config().agents);
    },
    mergesStderr: (agent) => mergesStderr(config(), agent),
    status: () => supervisor.status(),
    approvals: () => readApprovals(config().daemon.state_dir),
    decideApproval: (id, decision, answer) =>
      supervisor.decideApproval(id, decision, { ...answer, channel: 'http' }),
    control: (ref, action, request) => supervisor.control(ref, action, { ...request, via: 'mcp' }),
  };
}

/**
 * The caller a token's identity stands for: an approver when `[daemon.http.approvers.<name>]`
 * names it, bound to the agent that approver's `agent` names (`name` or `cell/name`).
 */
export function httpCaller(config: PitConfig, identity: string): McpCaller {
  const approver = config.daemon.http.approvers[identity];
  const bound = approver?.agent;
  const slash = bound?.indexOf('/') ?? -1;
  return {
    identity,
    approver: approver !== undefined,
    via: 'http',
    ...(bound !== undefined
      ? {
          agent:
            slash === -1
              ? { name: bound }
              : { name: bound.slice(slash + 1), cell: bound.slice(0, slash) },
        }
      : {}),
  };
}

/**
 * The `/mcp` handler: `[mcp] enabled` (404 when off; read at each request, so a reload
 * applies), Origin, then the bearer token, then a stateless Streamable HTTP transport
 * and a server built for the caller.
 */
export function createMcpHttpHandler(options: {
  backend: McpBackend;
  config: () => PitConfig;
  logger?: Logger;
  version?: string;
}): McpHttpHandler {
  return async (request, response, access) => {
    if (!options.config().mcp.enabled)
      return sendError(response, 404, 'MCP is disabled here ([mcp] enabled = false)');
    const origin = request.headers.origin;
    if (origin !== undefined && !originAllowed(origin, request, access)) {
      options.logger?.warn('mcp request refused: Origin is not this server', {
        origin,
        remote: request.socket.remoteAddress,
      });
      return sendError(response, 403, `Origin ${JSON.stringify(origin)} is not allowed`);
    }
    const auth = authorize(request.headers.authorization, access.credentials);
    if (!auth.ok) {
      options.logger?.warn('mcp request refused: not authorized', {
        reason: auth.reason,
        remote: request.socket.remoteAddress,
      });
      return sendError(response, auth.status, auth.reason, auth.status === 401);
    }
    const config = options.config();
    const server = createPitMcpServer({
      backend: options.backend,
      caller: httpCaller(config, auth.identity),
      actions: config.mcp.actions,
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.version ? { version: options.version } : {}),
    });
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
      maxRequestBodySize: MAX_MCP_BODY_BYTES,
    });
    response.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(request, response);
  };
}

/** An `Origin` names this server when its host would pass the Host check (`null` never does). */
function originAllowed(origin: string, request: IncomingMessage, access: McpAccess): boolean {
  let host: string;
  try {
    const url = new URL(origin);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
    host = url.port ? url.host : `${url.host}:${url.protocol === 'https:' ? 443 : 80}`;
  } catch {
    return false;
  }
  return isAllowedHost({
    host,
    localAddress: request.socket.localAddress,
    port: access.port,
    allowedHosts: access.allowedHosts,
  });
}

function sendError(
  response: ServerResponse,
  status: number,
  message: string,
  challenge = false,
): void {
  const text = `${JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message }, id: null })}\n`;
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...(challenge ? { 'www-authenticate': 'Bearer realm="pit"' } : {}),
  });
  response.end(text);
}
