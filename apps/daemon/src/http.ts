/**
 * The daemon's HTTP server: health, metrics, status, the cell event feed (SSE), approval
 * decisions behind a bearer token, and the dashboard page. It owns routing, authorization and
 * request parsing; the data and the decisions come from the handlers the daemon plugs in.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { CellUuidSchema, formatIssues } from '@pit/cell-spec';
import { DaemonError } from './errors.js';
import { isValidSince, type EventFeed } from './event-feed.js';
import type { Logger } from './logger.js';
import type { MetricsRegistry } from './metrics.js';

/** The body of `POST /api/approvals/:id/approve|deny` (optional). */
export const ApprovalDecisionBodySchema = z.strictObject({
  /** Why (shown in the event log and `pit why`). */
  reason: z.string().max(1000).optional(),
  /** Who decided (free text; the channel is recorded as `http`). */
  by: z.string().min(1).max(200).optional(),
});
export type ApprovalDecisionBody = z.infer<typeof ApprovalDecisionBodySchema>;

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
  /** `GET /`: the dashboard page (HTML), when there is one. */
  dashboard?(): string;
}

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  /** `host:port`; port 0 picks a free one. @default '127.0.0.1:7420' */
  listen?: string;
  /** The bearer token mutating calls need; without one they are refused (403). */
  token?: string;
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
  /** Changes the bearer token (config reload). */
  setToken(token: string | undefined): void;
  /** Stops listening and ends open event streams. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 16 * 1024;

/** What the request handlers share: the handlers, the current token, the open event streams. */
interface HttpContext {
  handlers: HttpHandlers;
  logger: Logger | undefined;
  /** Mutable: {@link HttpServer.setToken} replaces it. */
  auth: { token: string | undefined };
  streams: Set<AbortController>;
  keepAliveMs: number;
}

/**
 * Starts the daemon's HTTP server: `GET /health`, `GET /metrics`, `GET /api/status`,
 * `GET /api/events?cell=&since=` (server-sent events), `POST /api/approvals/:id/approve|deny`
 * (bearer token, compared in constant time), and `GET /` when a dashboard is given.
 * @throws {DaemonError} DAEMON_HTTP when it cannot listen.
 * @example
 * const http = await startHttpServer({ listen: '127.0.0.1:0', token, handlers });
 * console.log(`dashboard at ${http.url}`);
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const context: HttpContext = {
    handlers: options.handlers,
    logger: options.logger,
    auth: { token: options.token },
    streams: new Set<AbortController>(),
    keepAliveMs: options.keepAliveMs ?? 15_000,
  };
  const server = createServer((request, response) => {
    route(context, request, response).catch((error: unknown) => {
      context.logger?.error('http handler failed', {
        method: request.method,
        url: request.url,
        error: error instanceof Error ? error.message : String(error),
      });
      if (!response.headersSent) sendJson(response, 500, { error: 'internal error' });
      else response.destroy();
    });
  });
  await listenOn(server, options.listen ?? '127.0.0.1:7420');
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    server,
    setToken(next) {
      context.auth.token = next;
    },
    async close() {
      for (const controller of context.streams) controller.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Listens on `host:port`, or rejects with DAEMON_HTTP. */
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
    server.listen(port, host, () => resolve());
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
  if (method !== 'GET' && method !== 'HEAD')
    return sendJson(response, 405, { error: 'method not allowed' }, { allow: 'GET' });
  if (url.pathname === '/api/events') return streamEvents(context, request, response, url);
  return serveRead(context.handlers, response, url.pathname);
}

/** `POST /api/approvals/:id/approve|deny`: bearer token, then the body, then the decision. */
async function decideApproval(
  context: HttpContext,
  request: IncomingMessage,
  response: ServerResponse,
  approval: { id: string; decision: 'approve' | 'deny' },
): Promise<void> {
  const auth = authorize(request.headers.authorization, context.auth.token);
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
  const parsed = ApprovalDecisionBodySchema.safeParse(body.value ?? {});
  if (!parsed.success) return sendJson(response, 400, { error: formatIssues(parsed.error) });
  const result = await context.handlers.decideApproval(approval.id, approval.decision, parsed.data);
  if (result.ok) return sendJson(response, 200, result);
  return sendJson(response, result.reason === 'not_found' ? 404 : 409, {
    error: result.message,
    reason: result.reason,
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
    response.end();
  }
}

function parseListen(listen: string): { host: string; port: number } {
  const index = listen.lastIndexOf(':');
  const host = listen.slice(0, index).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(index + 1)) };
}

/**
 * Checks `Authorization: Bearer <token>` in constant time (both sides hashed to equal
 * length first, so neither the content nor the length of the token leaks through timing).
 */
export function authorize(
  header: string | undefined,
  token: string | undefined,
): { ok: true } | { ok: false; status: 401 | 403; reason: string } {
  if (!token)
    return {
      ok: false,
      status: 403,
      reason:
        'mutating calls are disabled: the daemon has no HTTP token (set the variable named by daemon.http.token_env)',
    };
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match) return { ok: false, status: 401, reason: 'missing bearer token' };
  const given = createHash('sha256').update(match[1]!).digest();
  const expected = createHash('sha256').update(token).digest();
  if (!timingSafeEqual(given, expected))
    return { ok: false, status: 401, reason: 'invalid bearer token' };
  return { ok: true };
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
