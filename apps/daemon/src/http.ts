/**
 * The daemon's HTTP server: health, metrics, status, the cell event feed (SSE), approval
 * decisions behind a bearer token, and the dashboard page. It owns routing, request parsing and
 * the server's limits (connections, event streams, header and idle timeouts); who may call is
 * http-access.ts's (Host check, tokens and identities); the data and the decisions come from the
 * handlers the daemon plugs in.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { z } from 'zod';
import { CellUuidSchema, formatIssues, type OperatorAction } from '@pit/cell-spec';
import { DaemonError } from './errors.js';
import type { ControlResult } from './controls.js';
import { isValidSince, type EventFeed } from './event-feed.js';
import {
  authorize,
  createAddressLimit,
  isAllowedHost,
  type AddressLimit,
  type Credential,
} from './http-access.js';
import type { Logger } from './logger.js';
import type { McpHttpHandler } from './mcp-http.js';
import type { MetricsRegistry } from './metrics.js';

/**
 * The body of `POST /api/approvals/:id/approve|deny` (optional). Who decided is not in it: the
 * decision is recorded under the identity of the bearer token (a `by` field is refused, 400).
 */
export const ApprovalDecisionBodySchema = z.strictObject({
  /** Why (shown in the event log and `pit why`). */
  reason: z.string().max(1000).optional(),
});
/** A decision as the handlers receive it: the body, and the identity the token authenticated. */
export type ApprovalDecisionBody = z.infer<typeof ApprovalDecisionBodySchema> & {
  /** The authenticated identity (`operator`, or an approver's name). */
  by?: string;
};

/** The outcome of an approval decision. */
export type ApprovalDecisionResult =
  | { ok: true; id: string; decision: 'approve' | 'deny'; [field: string]: unknown }
  | { ok: false; reason: 'not_found' | 'already_decided' | 'expired'; message: string };

/** Where the HTTP server takes its data from: the supervision loop plugs these in. */
export interface HttpHandlers {
  /** The daemon's own health (`GET /health`). */
  health(): { ok: boolean; [field: string]: unknown };
  /** `GET /api/status`: cells, agents, states, heartbeat ages, revive counts, pending approvals. */
  status(): Promise<unknown> | unknown;
  /** `GET /metrics`. */
  metrics: MetricsRegistry;
  /** `GET /api/events`: cell events as server-sent events. */
  events: EventFeed;
  /** `POST /api/approvals/:id/approve|deny` (only reached with a valid bearer token). */
  decideApproval(
    id: string,
    decision: 'approve' | 'deny',
    body: ApprovalDecisionBody,
  ): Promise<ApprovalDecisionResult>;
  /**
   * `POST /api/agents/:agent/restart|stop|start|reset` (only reached with a valid bearer token):
   * `agent` is `name` or `cell/name`, URL-encoded.
   */
  control?(
    ref: string,
    action: OperatorAction,
    body: { reason?: string; by: string },
  ): Promise<ControlResult>;
  /** `POST /api/reload` (only reached with a valid bearer token): re-reads the config, as SIGHUP does. */
  reload?(by: string): Promise<{ ok: true; agents: number } | { ok: false; error: string }>;
  /** `GET /api/recent-events?hours=N`: the supervised cells' events of the last N hours (1–48, default 6), bounded. */
  recentEvents?(sinceMs: number): Promise<unknown>;
  /**
   * `GET /api/agents/:agent/log?lines=N` (only reached with a valid bearer token): the tail of
   * an agent's output logs (`lines` its stdout, `stderr` its stderr); `agent` is `name` or
   * `cell/name`, URL-encoded.
   */
  agentLog?(
    ref: string,
    lines: number,
  ): Promise<
    | { ok: true; [field: string]: unknown }
    | { ok: false; reason: 'not_found' | 'ambiguous'; message: string }
  >;
  /** `GET /`: the dashboard page (HTML), when there is one. */
  dashboard?(): string;
  /** `/mcp`: the MCP endpoint (mcp-http.ts checks Origin and the bearer token), when `[mcp]` is enabled. */
  mcp?: McpHttpHandler;
}

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  /** `host:port`; port 0 picks a free one. @default '127.0.0.1:7420' */
  listen?: string;
  /** The bearer tokens mutating calls need, each with its identity; without any they are refused (403). */
  credentials?: Credential[];
  /** Further names a request's `Host` may carry (see `isAllowedHost`). @default [] */
  allowedHosts?: string[];
  /** Open connections at most; more are closed at accept. @default 256 */
  maxConnections?: number;
  /** Open connections from one remote address (an IPv6 /64) at most; more are closed at accept. @default 64 */
  maxConnectionsPerAddress?: number;
  /** Open event streams at most; more get 503. @default 32 */
  maxEventStreams?: number;
  /** Open event streams from one remote address (an IPv6 /64) at most; more get 503. @default 8 */
  maxEventStreamsPerAddress?: number;
  /** Time a connection has to send a request's headers. @default 10000 (ms) */
  headerTimeoutMs?: number;
  /** A connection without traffic for this long is closed. @default 60000 (ms) */
  idleTimeoutMs?: number;
  handlers: HttpHandlers;
  logger?: Logger;
  /** Interval of SSE keep-alive comments. @default 15000 (ms) */
  keepAliveMs?: number;
}

/** A running HTTP server. */
export interface HttpServer {
  /** `http://host:port`. */
  url: string;
  port: number;
  server: Server;
  /** Replaces the bearer tokens and the allowed hosts (config reload). */
  setAccess(access: { credentials: Credential[]; allowedHosts: string[] }): void;
  /** Connections closed at accept because {@link HttpServerOptions.maxConnections} (or the per-address cap) were open. */
  refusedConnections(): number;
  /** Stops listening and ends open event streams. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 16 * 1024;

/** What the request handlers share: the handlers, who may call, the open event streams. */
interface HttpContext {
  handlers: HttpHandlers;
  logger: Logger | undefined;
  /** Mutable: {@link HttpServer.setAccess} replaces it. */
  access: { credentials: Credential[]; allowedHosts: string[] };
  /** The port the server listens on (the Host check compares it). */
  port: number;
  streams: Set<AbortController>;
  maxEventStreams: number;
  /** Open event streams per remote address: one address cannot take every stream. */
  streamsPerAddress: AddressLimit;
  maxEventStreamsPerAddress: number;
  keepAliveMs: number;
}

/**
 * Starts the daemon's HTTP server: `GET /health`, `GET /metrics`, `GET /api/status`,
 * `GET /api/events?cell=&since=` (server-sent events), `POST /api/approvals/:id/approve|deny`
 * (bearer token, compared in constant time), and `GET /` when a dashboard is given. Every
 * request must carry a `Host` naming this server (421 otherwise); connections beyond
 * `maxConnections` are closed at accept, event streams beyond `maxEventStreams` get 503.
 * @throws {DaemonError} DAEMON_HTTP when it cannot listen.
 * @example
 * const http = await startHttpServer({ listen: '127.0.0.1:0', credentials, handlers });
 * console.log(`dashboard at ${http.url}`);
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const context: HttpContext = {
    handlers: options.handlers,
    logger: options.logger,
    access: { credentials: options.credentials ?? [], allowedHosts: options.allowedHosts ?? [] },
    port: 0,
    streams: new Set<AbortController>(),
    maxEventStreams: options.maxEventStreams ?? 32,
    streamsPerAddress: createAddressLimit(options.maxEventStreamsPerAddress ?? 8),
    maxEventStreamsPerAddress: options.maxEventStreamsPerAddress ?? 8,
    keepAliveMs: options.keepAliveMs ?? 15_000,
  };
  const headerTimeoutMs = options.headerTimeoutMs ?? 10_000;
  // Read by Node at construction only (the idle-socket check's interval among them).
  const serverOptions = {
    headersTimeout: headerTimeoutMs,
    requestTimeout: Math.max(headerTimeoutMs, 30_000),
    keepAliveTimeout: Math.min(5_000, headerTimeoutMs),
    connectionsCheckingInterval: Math.min(1_000, headerTimeoutMs),
  };
  const server = createServer(serverOptions, (request, response) => {
    guardedRoute(context, request, response).catch((error: unknown) => {
      context.logger?.error('http handler failed', {
        method: request.method,
        url: request.url,
        error: error instanceof Error ? error.message : String(error),
      });
      if (!response.headersSent) sendJson(response, 500, { error: 'internal error' });
      else response.destroy();
    });
  });
  const refused = limitConnections(server, options);
  await listenOn(server, options.listen ?? '127.0.0.1:7420');
  const address = server.address() as AddressInfo;
  context.port = address.port;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    server,
    setAccess(access) {
      context.access = {
        credentials: [...access.credentials],
        allowedHosts: [...access.allowedHosts],
      };
    },
    refusedConnections: () => refused.count,
    async close() {
      for (const controller of context.streams) controller.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/**
 * The server's limits: at most `maxConnections` open (Node closes more at accept: they never
 * reach a handler nor hold a descriptor) and `maxConnectionsPerAddress` from one remote address
 * (closed as soon as accepted), a first byte and then whole headers within
 * `headerTimeoutMs` each, no connection idle for longer than `idleTimeoutMs`.
 */
function limitConnections(server: Server, options: HttpServerOptions): { count: number } {
  const refused = { count: 0 };
  const headerTimeoutMs = options.headerTimeoutMs ?? 10_000;
  server.maxConnections = options.maxConnections ?? 256;
  server.timeout = options.idleTimeoutMs ?? 60_000;
  let lastWarning = 0;
  server.on('drop', () => {
    refused.count += 1;
    if (Date.now() - lastWarning < 10_000) return;
    lastWarning = Date.now();
    options.logger?.warn('http connection refused: too many open connections', {
      max_connections: server.maxConnections,
      refused_so_far: refused.count,
    });
  });
  server.on('timeout', (socket: { destroy(): void }) => socket.destroy());
  const perAddress = createAddressLimit(options.maxConnectionsPerAddress ?? 64);
  let lastAddressWarning = 0;
  // Node's header timeout starts with the first byte: a connection that sends nothing is closed here.
  // Before the HTTP layer's own listener: a refused connection costs no parser.
  server.prependListener('connection', (socket: Socket) => {
    const key = perAddress.admit(socket.remoteAddress);
    if (key === undefined) {
      refused.count += 1;
      socket.destroy();
      if (Date.now() - lastAddressWarning < 10_000) return;
      lastAddressWarning = Date.now();
      options.logger?.warn('http connection refused: too many open connections from one address', {
        remote: socket.remoteAddress,
        max_connections_per_address: options.maxConnectionsPerAddress ?? 64,
        refused_so_far: refused.count,
      });
      return;
    }
    socket.once('close', () => perAddress.release(key));
    const silent = setTimeout(() => socket.destroy(), headerTimeoutMs);
    silent.unref();
    const spoke = () => clearTimeout(silent);
    socket.once('data', spoke);
    socket.once('close', spoke);
  });
  return refused;
}

/** Refuses a request whose `Host` does not name this server (DNS rebinding), then routes it. */
async function guardedRoute(
  context: HttpContext,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const allowed = isAllowedHost({
    host: request.headers.host,
    localAddress: request.socket.localAddress,
    port: context.port,
    allowedHosts: context.access.allowedHosts,
  });
  if (!allowed) {
    context.logger?.warn('http request refused: Host does not name this server', {
      host: request.headers.host,
      remote: request.socket.remoteAddress,
    });
    return sendJson(response, 421, {
      error: `Host ${JSON.stringify(request.headers.host ?? '')} does not name this server: use its address (e.g. 127.0.0.1:${context.port}) or add the name to daemon.http.allowed_hosts`,
    });
  }
  return route(context, request, response);
}

/** Listens on `host:port`, or rejects with DAEMON_HTTP. */
/**
 * The accept queue asked of the kernel (capped by `net.core.somaxconn`): under a flood,
 * connections beyond the per-address cap are accepted and closed in JavaScript, more slowly than
 * Node drops those beyond `maxConnections`; a short queue would then overflow and leave the
 * flooder's handshakes retrying for tens of seconds.
 */
const LISTEN_BACKLOG = 4096;

async function listenOn(server: Server, listen: string): Promise<void> {
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new DaemonError('DAEMON_HTTP', `cannot listen on ${host}:${port}: ${error.message}`, {
          cause: error,
        }),
      ),
    );
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => resolve());
  });
}

/** Sends a request to its route: approvals (POST), or the read-only routes (GET/HEAD). */
async function route(
  context: HttpContext,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const method = request.method ?? 'GET';
  if (url.pathname === '/mcp') {
    if (!context.handlers.mcp) return sendJson(response, 404, { error: 'no MCP here' });
    return context.handlers.mcp(request, response, { ...context.access, port: context.port });
  }
  const approval = /^\/api\/approvals\/([A-Za-z0-9_.:-]{1,128})\/(approve|deny)$/.exec(
    url.pathname,
  );
  if (approval) {
    if (method !== 'POST') return sendJson(response, 405, { error: 'use POST' }, { allow: 'POST' });
    return decideApproval(context, request, response, {
      id: approval[1]!,
      decision: approval[2] as 'approve' | 'deny',
    });
  }
  const control = /^\/api\/agents\/([^/]{1,300})\/(restart|stop|start|reset)$/.exec(url.pathname);
  if (control || url.pathname === '/api/reload') {
    if (method !== 'POST') return sendJson(response, 405, { error: 'use POST' }, { allow: 'POST' });
    return operatorCall(context, request, response, {
      ...(control ? { ref: control[1]!, action: control[2] as OperatorAction } : {}),
    });
  }
  if (method !== 'GET' && method !== 'HEAD')
    return sendJson(response, 405, { error: 'method not allowed' }, { allow: 'GET' });
  if (url.pathname === '/api/events') return streamEvents(context, request, response, url);
  if (url.pathname === '/api/recent-events') return recentEvents(context, response, url);
  const log = /^\/api\/agents\/([^/]{1,300})\/log$/.exec(url.pathname);
  if (log) return agentLog(context, request, response, { ref: log[1]!, url });
  return serveRead(context.handlers, response, url.pathname);
}

/** `POST /api/approvals/:id/approve|deny`: bearer token, then the body, then the decision. */
async function decideApproval(
  context: HttpContext,
  request: IncomingMessage,
  response: ServerResponse,
  approval: { id: string; decision: 'approve' | 'deny' },
): Promise<void> {
  const auth = authorize(request.headers.authorization, context.access.credentials);
  if (!auth.ok) {
    context.logger?.warn('approval refused: not authorized', {
      id: approval.id,
      reason: auth.reason,
      remote: request.socket.remoteAddress,
    });
    return sendJson(
      response,
      auth.status,
      { error: auth.reason },
      auth.status === 401 ? { 'www-authenticate': 'Bearer realm="pit"' } : {},
    );
  }
  const body = await readBody(request);
  if (!body.ok) return sendJson(response, body.status, { error: body.error });
  if (isRecord(body.value) && 'by' in body.value)
    return sendJson(response, 400, {
      error: `by: not accepted: the decision is recorded under the identity of the bearer token (here ${auth.identity})`,
    });
  const parsed = ApprovalDecisionBodySchema.safeParse(body.value ?? {});
  if (!parsed.success) return sendJson(response, 400, { error: formatIssues(parsed.error) });
  const result = await context.handlers.decideApproval(approval.id, approval.decision, {
    ...parsed.data,
    by: auth.identity,
  });
  if (result.ok) return sendJson(response, 200, result);
  return sendJson(response, result.reason === 'not_found' ? 404 : 409, {
    error: result.message,
    reason: result.reason,
  });
}

/** The body of `POST /api/agents/:agent/:action` (optional): why, shown in the event log and `pit why`. */
export const ControlBodySchema = z.strictObject({ reason: z.string().max(1000).optional() });

/**
 * `POST /api/agents/:agent/:action` and `POST /api/reload`: the same bearer token and Host
 * check as approvals, then the control, recorded under the token's identity.
 */
async function operatorCall(
  context: HttpContext,
  request: IncomingMessage,
  response: ServerResponse,
  call: { ref?: string; action?: OperatorAction },
): Promise<void> {
  const auth = authorize(request.headers.authorization, context.access.credentials);
  if (!auth.ok) {
    context.logger?.warn('operator control refused: not authorized', {
      agent: call.ref,
      action: call.action ?? 'reload',
      reason: auth.reason,
      remote: request.socket.remoteAddress,
    });
    return sendJson(
      response,
      auth.status,
      { error: auth.reason },
      auth.status === 401 ? { 'www-authenticate': 'Bearer realm="pit"' } : {},
    );
  }
  const body = await readBody(request);
  if (!body.ok) return sendJson(response, body.status, { error: body.error });
  const parsed = ControlBodySchema.safeParse(body.value ?? {});
  if (!parsed.success) return sendJson(response, 400, { error: formatIssues(parsed.error) });
  const { handlers } = context;
  if (call.ref === undefined || call.action === undefined) {
    if (!handlers.reload) return sendJson(response, 404, { error: 'no reload here' });
    const result = await handlers.reload(auth.identity);
    return sendJson(response, result.ok ? 200 : 422, result);
  }
  if (!handlers.control) return sendJson(response, 404, { error: 'no agent controls here' });
  let ref: string;
  try {
    ref = decodeURIComponent(call.ref);
  } catch {
    return sendJson(response, 400, { error: 'agent: not a valid URL-encoded reference' });
  }
  const result = await handlers.control(ref, call.action, { ...parsed.data, by: auth.identity });
  if (result.ok) return sendJson(response, 200, result);
  return sendJson(response, result.reason === 'not_found' ? 404 : 409, {
    error: result.message,
    reason: result.reason,
    ...(result.candidates ? { candidates: result.candidates } : {}),
  });
}

/** The read-only routes: `/health`, `/metrics`, `/api/status` and the dashboard. */
async function serveRead(
  handlers: HttpHandlers,
  response: ServerResponse,
  path: string,
): Promise<void> {
  switch (path) {
    case '/health': {
      const health = handlers.health();
      return sendJson(response, health.ok ? 200 : 503, health);
    }
    case '/metrics':
      response.writeHead(200, {
        'content-type': handlers.metrics.contentType,
        'cache-control': 'no-store',
      });
      return void response.end(handlers.metrics.render());
    case '/api/status':
      return sendJson(response, 200, await handlers.status());
    case '/':
    case '/index.html':
      if (handlers.dashboard) {
        response.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          'content-security-policy':
            "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
        });
        return void response.end(handlers.dashboard());
      }
      return sendJson(response, 404, { error: 'no dashboard' });
    default:
      return sendJson(response, 404, { error: `no route for ${path}` });
  }
}

/** `GET /api/recent-events?hours=N`: recent events as JSON (for the dashboard at load). */
async function recentEvents(
  context: HttpContext,
  response: ServerResponse,
  url: URL,
): Promise<void> {
  if (!context.handlers.recentEvents) return sendJson(response, 404, { error: 'no events here' });
  const text = url.searchParams.get('hours') ?? '6';
  const hours = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || hours <= 0 || hours > 48)
    return sendJson(response, 400, {
      error: 'hours: must be a number of hours above 0, at most 48',
    });
  return sendJson(
    response,
    200,
    await context.handlers.recentEvents(Date.now() - hours * 3_600_000),
  );
}

/** `GET /api/agents/:agent/log?lines=N`: bearer token, then the tail of the agent's log. */
async function agentLog(
  context: HttpContext,
  request: IncomingMessage,
  response: ServerResponse,
  call: { ref: string; url: URL },
): Promise<void> {
  const auth = authorize(request.headers.authorization, context.access.credentials);
  if (!auth.ok) return sendJson(response, auth.status, { error: auth.reason });
  if (!context.handlers.agentLog) return sendJson(response, 404, { error: 'no agent logs here' });
  const text = call.url.searchParams.get('lines') ?? '100';
  if (!/^\d{1,6}$/.test(text) || Number(text) === 0)
    return sendJson(response, 400, { error: 'lines: must be a whole number of lines above 0' });
  let ref: string;
  try {
    ref = decodeURIComponent(call.ref);
  } catch {
    return sendJson(response, 400, { error: 'agent: not a valid URL-encoded reference' });
  }
  try {
    const result = await context.handlers.agentLog(ref, Number(text));
    if (result.ok) return sendJson(response, 200, result);
    return sendJson(response, result.reason === 'not_found' ? 404 : 409, {
      error: result.message,
      reason: result.reason,
    });
  } catch (error) {
    return sendJson(response, 400, { error: (error as Error).message });
  }
}

/** `GET /api/events?cell=&since=`: cell events as server-sent events, until either side closes. */
async function streamEvents(
  context: HttpContext,
  request: IncomingMessage,
  response: ServerResponse,
  url: URL,
): Promise<void> {
  const cell = url.searchParams.get('cell') ?? undefined;
  const since = url.searchParams.get('since') ?? undefined;
  if (cell !== undefined && !CellUuidSchema.safeParse(cell).success)
    return sendJson(response, 400, { error: 'cell: must be a lower-case version-4 UUID' });
  if (since !== undefined && !isValidSince(since))
    return sendJson(response, 400, { error: 'since: must be an ISO-8601 time or unix seconds' });
  const addressKey = admitStream(context, request, response);
  if (addressKey === undefined) return;
  const lastEventId =
    typeof request.headers['last-event-id'] === 'string'
      ? request.headers['last-event-id']
      : undefined;
  const controller = new AbortController();
  context.streams.add(controller);
  const stop = () => controller.abort();
  request.on('close', stop);
  response.on('close', stop);
  response.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  response.write('retry: 2000\n\n');
  const keepAlive = setInterval(() => response.write(': keep-alive\n\n'), context.keepAliveMs);
  try {
    for await (const item of context.handlers.events(
      {
        ...(cell ? { cell } : {}),
        ...(since ? { since } : {}),
        ...(lastEventId ? { lastEventId } : {}),
      },
      controller.signal,
    )) {
      if (controller.signal.aborted) break;
      // A known kind is a named SSE event; a kind this version does not know goes out as a
      // plain `message` (its kind is in the data), so a client never has to know it in advance.
      const name = item.known ? `event: ${item.event.event}\n` : '';
      response.write(
        `id: ${item.id}\n${name}data: ${JSON.stringify({ cell: item.cell, ...item.event })}\n\n`,
      );
    }
  } finally {
    clearInterval(keepAlive);
    context.streams.delete(controller);
    context.streamsPerAddress.release(addressKey);
    response.end();
  }
}

/**
 * Admits an event stream under both caps (all streams, streams per remote address), or answers
 * 503. @returns the address key to release when the stream ends, `undefined` when refused
 */
function admitStream(
  context: HttpContext,
  request: IncomingMessage,
  response: ServerResponse,
): string | undefined {
  if (context.streams.size >= context.maxEventStreams) {
    context.logger?.warn('event stream refused: too many open streams', {
      max_event_streams: context.maxEventStreams,
      remote: request.socket.remoteAddress,
    });
    sendJson(
      response,
      503,
      { error: `too many open event streams (${context.maxEventStreams}); try again later` },
      { 'retry-after': '10' },
    );
    return undefined;
  }
  const addressKey = context.streamsPerAddress.admit(request.socket.remoteAddress);
  if (addressKey === undefined) {
    context.logger?.warn('event stream refused: too many open streams from one address', {
      max_event_streams_per_address: context.maxEventStreamsPerAddress,
      remote: request.socket.remoteAddress,
    });
    sendJson(
      response,
      503,
      {
        error: `too many open event streams from this address (${context.maxEventStreamsPerAddress}); try again later`,
      },
      { 'retry-after': '10' },
    );
    return undefined;
  }
  return addressKey;
}

function parseListen(listen: string): { host: string; port: number } {
  const index = listen.lastIndexOf(':');
  const host = listen.slice(0, index).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(index + 1)) };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function readBody(
  request: IncomingMessage,
): Promise<{ ok: true; value: unknown } | { ok: false; status: number; error: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES)
      return { ok: false, status: 413, error: `body larger than ${MAX_BODY_BYTES} bytes` };
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, status: 400, error: 'body must be JSON' };
  }
}

function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}
