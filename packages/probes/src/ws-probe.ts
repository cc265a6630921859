import { STATUS_CODES } from 'node:http';

import { z } from 'zod';
import { ProbeError } from './errors.js';
import {
  classifySocketError,
  describeError,
  parseTarget,
  runProbe,
  type ProbeOptions,
  type ProbeResult,
} from './probe-result.js';

/** Where {@link wsProbe} opens a WebSocket. */
export interface WsTarget {
  /** A `ws:` or `wss:` URL (`http:`/`https:` are accepted and upgraded). */
  url: string | URL;
  /** Extra handshake headers (e.g. an authorization token). */
  headers?: Record<string, string>;
  /** Subprotocols to offer. */
  protocols?: string[];
  /** Verify the server's TLS certificate (wss only). @default true */
  rejectUnauthorized?: boolean;
}

const WsTargetSchema = z.strictObject({
  url: z.union([z.string(), z.instanceof(URL)]),
  headers: z.record(z.string(), z.string()).optional(),
  protocols: z.array(z.string().min(1)).optional(),
  rejectUnauthorized: z.boolean().optional(),
});

/** The result of {@link wsProbe}. */
export interface WsProbeResult extends ProbeResult {
  kind: 'ws';
  /** The HTTP status of a refused upgrade. */
  statusCode?: number;
  /** The subprotocol the server chose, on success. */
  protocol?: string;
}

/**
 * Performs a WebSocket opening handshake: ok when the upgrade completes, after which the
 * connection is closed with 1000. A refused upgrade, closed port or silent server is a
 * result with `ok: false`. A string target is the URL.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a URL that is not ws(s)/http(s); PROBE_INVALID_OPTIONS.
 * @example
 * const result = await wsProbe('ws://127.0.0.1:8643/bus', { timeoutMs: 2000 });
 */
export async function wsProbe(
  target: WsTarget | string | URL,
  options?: ProbeOptions,
): Promise<WsProbeResult> {
  const spec = parseTarget(
    'ws',
    WsTargetSchema,
    typeof target === 'string' || target instanceof URL ? { url: target } : target,
  );
  const url = parseWsUrl(spec.url);
  // ws is loaded by the first WebSocket probe, not at import.
  const { default: WebSocket } = await import('ws');
  return runProbe<WsProbeResult>(
    { kind: 'ws', describe: `WebSocket ${url.href}` },
    options,
    (attempt) => {
      const socket = new WebSocket(url, spec.protocols ?? [], {
        headers: spec.headers,
        followRedirects: false,
        perMessageDeflate: false,
        rejectUnauthorized: spec.rejectUnauthorized ?? true,
      });
      let opened = false;
      socket.on('error', (error) => {
        if (attempt.signal.aborted) return;
        attempt.settle({
          ok: false,
          failure: classifySocketError(error),
          detail: `WebSocket ${url.href}: ${describeError(error)}`,
        });
      });
      socket.once('unexpected-response', (request, response) => {
        const status = response.statusCode ?? 0;
        attempt.settle({
          ok: false,
          failure: 'bad_status',
          statusCode: status,
          detail:
            `WebSocket ${url.href}: upgrade refused: ${status} ${response.statusMessage || STATUS_CODES[status] || ''}`.trim(),
        });
        response.destroy();
        request.destroy();
      });
      socket.once('open', () => {
        opened = true;
        attempt.settle({
          ok: true,
          detail: `WebSocket ${url.href}: handshake complete`,
          ...(socket.protocol ? { protocol: socket.protocol } : {}),
        });
      });
      attempt.signal.addEventListener(
        'abort',
        () => {
          if (opened && socket.readyState === WebSocket.OPEN) {
            socket.close(1000, 'probe');
            // A peer that never answers the close frame is cut off rather than left for ws's 30 s close timer.
            setTimeout(() => socket.terminate(), 1000).unref();
          } else {
            socket.terminate();
          }
        },
        { once: true },
      );
    },
  );
}

function parseWsUrl(value: string | URL): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ProbeError(
      'PROBE_INVALID_TARGET',
      `ws probe target: url: ${JSON.stringify(String(value))} is not a valid URL`,
    );
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new ProbeError(
      'PROBE_INVALID_TARGET',
      `ws probe target: url: ${url.href} must be ws: or wss:`,
    );
  }
  return url;
}
