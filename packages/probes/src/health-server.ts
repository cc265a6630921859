import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { formatIssues } from '@pit/cell-spec';
import { ProbeError } from './errors.js';
import { silentLogger, type Logger } from './logger.js';
import { describeError, functionSchema } from './probe-result.js';

/** The live fields a harness supplies on each request; anything extra is included in the body as is. */
export interface HealthFields {
  /** `ok` answers 200; anything else (`degraded`, `error`, …) answers 503. @default 'ok' */
  status?: string;
  /** Clients currently connected to the gateway. @default 0 */
  connected_clients?: number;
  /** Ports the gateway serves. @default [the health server's port] */
  ports?: number[];
  [field: string]: unknown;
}

/** The `/health` body. */
export const HealthResponseSchema = z.looseObject({
  status: z.string().min(1),
  service: z.string().min(1),
  uptime_seconds: z.number().int().nonnegative(),
  connected_clients: z.number().int().nonnegative(),
  ports: z.array(z.number().int().min(0).max(65_535)),
  /** ISO-8601 UTC time of the response. */
  ts: z.string(),
});
export type HealthResponse = z.infer<typeof HealthResponseSchema>;

const HealthFieldsSchema = z.looseObject({
  status: z.string().min(1).optional(),
  connected_clients: z.number().int().nonnegative().optional(),
  ports: z.array(z.number().int().min(0).max(65_535)).optional(),
});

/** Options of {@link createHealthServer}. */
export interface HealthServerOptions {
  /** The service name reported as `service`, e.g. the agent or gateway name. */
  service: string;
  /** Port to listen on; 0 picks a free one. @default 0 */
  port?: number;
  /** Address to bind. Loopback by default: expose it deliberately, not by accident. @default '127.0.0.1' */
  host?: string;
  /** The path served. @default '/health' */
  path?: string;
  /** Supplies the live fields on each request (may be async). A throw answers 503 `{status: "error"}`. */
  live?: () => HealthFields | Promise<HealthFields>;
  /** When the service started, for `uptime_seconds`; ms since the Unix epoch. @default this process's start */
  startedAt?: number;
  /** The clock, ms since the Unix epoch. @default Date.now */
  now?: () => number;
  /** Where request errors go. @default silent */
  logger?: Logger;
}

/** Where a health server listens. */
export interface HealthServerAddress {
  host: string;
  port: number;
  /** The full URL of the health endpoint, e.g. `http://127.0.0.1:8642/health`. */
  url: string;
}

/** An embeddable `/health` endpoint. */
export interface HealthServer {
  /** Starts listening. @throws {ProbeError} PROBE_LISTEN_FAILED (port in use, bad address); PROBE_STOPPED after close(). */
  listen(): Promise<HealthServerAddress>;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
  /** The address, once listening. */
  readonly address: HealthServerAddress | undefined;
  /** The underlying Node server. */
  readonly server: Server;
}

const HealthServerOptionsSchema = z.strictObject({
  service: z.string().min(1),
  port: z.number().int().min(0).max(65_535).optional(),
  host: z.string().min(1).optional(),
  path: z.string().startsWith('/').optional(),
  live: functionSchema<HealthServerOptions['live']>().optional(),
  startedAt: z.number().optional(),
  now: functionSchema<() => number>().optional(),
  logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).optional(),
});

/**
 * Creates the embeddable gateway `/health` endpoint: `GET /health` answers
 * `{status, service, uptime_seconds, connected_clients, ports, ts}` (200 when status is
 * `ok`, 503 otherwise), `HEAD /health` the same without a body, anything else 404.
 * Bound to 127.0.0.1 by default.
 * @throws {ProbeError} PROBE_INVALID_OPTIONS.
 * @example
 * import { createHealthServer } from '@pit/probes';
 * await createHealthServer({ service: 'forge', port: 8642, live: () => ({ connected_clients: clients.size }) }).listen();
 */
export function createHealthServer(options: HealthServerOptions): HealthServer {
  const parsed = HealthServerOptionsSchema.safeParse(options);
  if (!parsed.success)
    throw new ProbeError(
      'PROBE_INVALID_OPTIONS',
      `health server options: ${formatIssues(parsed.error)}`,
    );
  const host = options.host ?? '127.0.0.1';
  const path = options.path ?? '/health';
  const now = options.now ?? Date.now;
  const startedAt = options.startedAt ?? now() - process.uptime() * 1000;
  const logger = options.logger ?? silentLogger;
  let address: HealthServerAddress | undefined;
  let closed = false;

  const body = async (): Promise<{ statusCode: number; payload: Record<string, unknown> }> => {
    const base = {
      service: options.service,
      uptime_seconds: Math.max(0, Math.floor((now() - startedAt) / 1000)),
      ts: new Date(now()).toISOString(),
    };
    let fields: HealthFields = {};
    try {
      const supplied = options.live ? await options.live() : {};
      const check = HealthFieldsSchema.safeParse(supplied);
      if (!check.success) throw new Error(`live fields: ${formatIssues(check.error)}`);
      fields = check.data;
    } catch (error) {
      logger.error('health server: live() failed', {
        service: options.service,
        error: describeError(error),
      });
      return {
        statusCode: 503,
        payload: {
          status: 'error',
          ...base,
          connected_clients: 0,
          ports: address ? [address.port] : [],
          error: describeError(error),
        },
      };
    }
    const {
      status = 'ok',
      connected_clients = 0,
      ports = address ? [address.port] : [],
      ...extra
    } = fields;
    return {
      statusCode: status === 'ok' ? 200 : 503,
      payload: { ...extra, status, ...base, connected_clients, ports },
    };
  };

  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    let pathname: string;
    try {
      pathname = new URL(request.url ?? '/', 'http://health.invalid').pathname;
    } catch {
      pathname = '';
    }
    const method = request.method ?? '';
    if (pathname !== path || (method !== 'GET' && method !== 'HEAD')) {
      const text = JSON.stringify({ error: 'not found' });
      response.writeHead(404, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
      });
      response.end(method === 'HEAD' ? undefined : text);
      return;
    }
    body()
      .then(({ statusCode, payload }) => {
        const text = JSON.stringify(payload);
        response.writeHead(statusCode, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          'cache-control': 'no-store',
        });
        response.end(method === 'HEAD' ? undefined : text);
      })
      .catch((error: unknown) => {
        logger.error('health server: could not answer', {
          service: options.service,
          error: describeError(error),
        });
        response.destroy();
      });
  };

  const server = createServer(handle);
  server.on('clientError', (_error, socket) => socket.destroy());

  return {
    server,
    get address() {
      return address;
    },
    listen() {
      if (closed)
        return Promise.reject(
          new ProbeError(
            'PROBE_STOPPED',
            `health server ${options.service}: listen() after close()`,
          ),
        );
      if (address) return Promise.resolve(address);
      return new Promise((resolveListen, rejectListen) => {
        const onError = (error: Error): void => {
          rejectListen(
            new ProbeError(
              'PROBE_LISTEN_FAILED',
              `health server ${options.service}: cannot listen on ${host}:${options.port ?? 0}: ${describeError(error)}`,
              { cause: error },
            ),
          );
        };
        server.once('error', onError);
        server.listen(options.port ?? 0, host, () => {
          server.off('error', onError);
          const info = server.address() as AddressInfo;
          const shown = info.family === 'IPv6' ? `[${info.address}]` : info.address;
          address = {
            host: info.address,
            port: info.port,
            url: `http://${shown}:${info.port}${path}`,
          };
          resolveListen(address);
        });
      });
    },
    close() {
      closed = true;
      return new Promise((resolveClose) => {
        if (!server.listening) {
          resolveClose();
          return;
        }
        server.close(() => resolveClose());
        server.closeAllConnections();
      });
    },
  };
}
