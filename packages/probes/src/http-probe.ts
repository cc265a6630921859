import { connect as netConnect, type Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import { z } from 'zod';
import { formatIssues } from '@pit/cell-spec';
import { ProbeError } from './errors.js';
import { BodyReader, readHead, type ResponseHead } from './http-response.js';
import {
  classifySocketError,
  describeError,
  parseTarget,
  runProbe,
  type Attempt,
  type ProbeOptions,
  type ProbeResult,
} from './probe-result.js';

/** What {@link httpProbe} requests and how it judges the answer. */
export interface HttpTarget {
  /** An `http:` or `https:` URL, e.g. `http://127.0.0.1:8642/health`. */
  url: string | URL;
  /** Extra request headers (a name given here replaces the probe's own `accept` or `user-agent`). */
  headers?: Record<string, string>;
  /**
   * When given, the body must be JSON accepted by this schema (e.g. {@link GatewayHealthSchema}
   * for a gateway's `{ "status": "ok" }`); otherwise only the status is checked and the body is not read.
   */
  schema?: z.ZodType;
  /** The largest body read for the schema check; a longer body fails with `bad_body`. bytes. @default 65536 */
  maxBodyBytes?: number;
  /** How many redirects to follow; a redirect beyond that is a `bad_status` failure. @default 0 */
  followRedirects?: number;
  /** Verify the server's TLS certificate (https only). @default true */
  rejectUnauthorized?: boolean;
}

/** A header name: an HTTP token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A header value: tabs and printable latin-1 only (no line break: a request must not be split by its own config). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

const HttpTargetSchema = z.strictObject({
  url: z.union([z.string(), z.instanceof(URL)]),
  headers: z
    .record(
      z.string().regex(HEADER_NAME, 'must be an HTTP header name'),
      z.string().regex(HEADER_VALUE, 'must be printable latin-1 text without line breaks'),
    )
    .optional(),
  schema: z
    .custom<z.ZodType>((value) => value instanceof z.ZodType, { message: 'must be a zod schema' })
    .optional(),
  maxBodyBytes: z.number().int().positive().optional(),
  followRedirects: z.number().int().nonnegative().max(20).optional(),
  rejectUnauthorized: z.boolean().optional(),
});

/**
 * The body a gateway's `/health` must return to count as healthy: `status` is `"ok"`; other
 * fields are allowed. Pass it as `schema` to {@link httpProbe}.
 */
export const GatewayHealthSchema = z.looseObject({ status: z.literal('ok') });

/** The result of {@link httpProbe}. */
export interface HttpProbeResult extends ProbeResult {
  kind: 'http';
  /** The final response's status code, when one arrived. */
  statusCode?: number;
  /** The parsed body, when a `schema` was given and accepted it. */
  body?: unknown;
}

/** The default body cap of {@link httpProbe}, bytes. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** An HTTP probe of one target, validated once: call it for each run. */
export type HttpProbe = (options?: ProbeOptions) => Promise<HttpProbeResult>;

/**
 * `GET`s a URL: ok on a 2xx status (and, with `schema`, a JSON body the schema accepts).
 * Redirects are not followed unless `followRedirects` allows it; bodies are capped; a hung
 * server ends in `failure: 'timeout'` when the timeout expires. A string target is the URL.
 * Each run opens one connection (`Connection: close`), as Kubernetes' HTTP probes do, and
 * closes it once the answer is judged.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a URL that is not http(s) or a bad header; PROBE_INVALID_OPTIONS.
 * @example
 * const result = await httpProbe({ url: 'http://127.0.0.1:8642/health', schema: GatewayHealthSchema }, { timeoutMs: 2000 });
 */
export async function httpProbe(
  target: HttpTarget | string | URL,
  options?: ProbeOptions,
): Promise<HttpProbeResult> {
  return createHttpProbe(target)(options);
}

/**
 * {@link httpProbe} with its target checked and its request built once, for a probe run again
 * and again (a scheduler's).
 * @throws {ProbeError} PROBE_INVALID_TARGET for a URL that is not http(s) or a bad header.
 * @example
 * const probe = createHttpProbe('http://127.0.0.1:8642/health');
 * const result = await probe({ timeoutMs: 2000 });
 */
export function createHttpProbe(target: HttpTarget | string | URL): HttpProbe {
  const spec = parseTarget(
    'http',
    HttpTargetSchema,
    typeof target === 'string' || target instanceof URL ? { url: target } : target,
  );
  const first = requestTo(parseHttpUrl(spec.url), spec);
  const maxBodyBytes = spec.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const redirects = spec.followRedirects ?? 0;
  const run = { kind: 'http', describe: `GET ${first.url.href}` } as const;
  return (options) =>
    runProbe<HttpProbeResult>(run, options, (attempt) => {
      get(attempt, first, redirects);
    });

  function get(attempt: Attempt<HttpProbeResult>, request: Request, redirectsLeft: number): void {
    const { url } = request;
    const socket: Socket =
      url.protocol === 'https:'
        ? tlsConnect({
            host: request.host,
            port: request.port,
            servername: isIp(request.host) ? undefined : request.host,
            rejectUnauthorized: spec.rejectUnauthorized ?? true,
          })
        : netConnect({ host: request.host, port: request.port });
    // Settled, timed out or aborted: drop the connection.
    attempt.onSettled(() => socket.destroy());
    socket.write(request.text, 'latin1');
    let received: Buffer | undefined;
    let body: BodyReader | undefined;
    let head: ResponseHead | undefined;
    const fail = (failure: 'bad_status' | 'bad_body' | 'unreachable', detail: string) =>
      attempt.settle({
        ok: false,
        failure,
        ...(head ? { statusCode: head.status } : {}),
        detail: `GET ${url.href}: ${detail}`,
      });
    socket.on('error', (error) => {
      if (attempt.settled) return;
      attempt.settle({
        ok: false,
        failure: classifySocketError(error),
        ...(head ? { statusCode: head.status } : {}),
        detail: `GET ${url.href}: ${head ? 'body: ' : ''}${describeError(error)}`,
      });
    });
    socket.on('end', () => {
      if (attempt.settled) return;
      if (body) {
        finishBody(attempt, url, head!, body.end());
        return;
      }
      fail('unreachable', 'the connection closed before a response (socket hang up)');
    });
    socket.on('data', (chunk: Buffer) => {
      if (attempt.settled) return;
      if (body) {
        finishBody(attempt, url, head!, body.push(chunk));
        return;
      }
      received = received === undefined ? chunk : Buffer.concat([received, chunk]);
      const step = readHead(received);
      if (step.kind === 'more') return;
      if (step.kind === 'error') {
        fail('unreachable', step.message);
        return;
      }
      head = step.head;
      received = undefined;
      const status = head.status;
      const statusLine = statusLineOf(head);
      const location = head.headers.get('location');
      if (status >= 300 && status < 400 && location !== undefined) {
        socket.destroy();
        redirect(attempt, request, head, statusLine, location, redirectsLeft);
        return;
      }
      if (status < 200 || status > 299) {
        fail('bad_status', statusLine);
        return;
      }
      if (!spec.schema) {
        attempt.settle({ ok: true, statusCode: status, detail: `GET ${url.href}: ${statusLine}` });
        return;
      }
      body = new BodyReader(head, maxBodyBytes);
      const declared = body.declaredLength;
      if (declared !== undefined && declared > maxBodyBytes) {
        fail(
          'bad_body',
          `${statusLine} but the body (${declared} bytes) exceeds ${maxBodyBytes} bytes`,
        );
        return;
      }
      finishBody(attempt, url, head, body.push(step.rest));
    });
  }

  function redirect(
    attempt: Attempt<HttpProbeResult>,
    request: Request,
    head: ResponseHead,
    statusLine: string,
    location: string,
    redirectsLeft: number,
  ): void {
    const from = request.url.href;
    const fail = (detail: string) =>
      attempt.settle({
        ok: false,
        failure: 'bad_status',
        statusCode: head.status,
        detail: `GET ${from}: ${detail}`,
      });
    if (redirectsLeft <= 0) {
      fail(`${statusLine} to ${location} (redirect not followed)`);
      return;
    }
    let next: URL;
    try {
      next = new URL(location, request.url);
    } catch {
      fail(`${statusLine} to an invalid location ${JSON.stringify(location)}`);
      return;
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      fail(`redirect to a non-http URL ${next.href}`);
      return;
    }
    get(attempt, requestTo(next, spec), redirectsLeft - 1);
  }

  function finishBody(
    attempt: Attempt<HttpProbeResult>,
    url: URL,
    head: ResponseHead,
    step: ReturnType<BodyReader['push']>,
  ): void {
    if (step.kind === 'more') return;
    const status = head.status;
    const statusLine = statusLineOf(head);
    const fail = (failure: 'bad_body' | 'unreachable', detail: string) =>
      attempt.settle({
        ok: false,
        failure,
        statusCode: status,
        detail: `GET ${url.href}: ${detail}`,
      });
    if (step.kind === 'too_large') {
      fail('bad_body', `${statusLine} but the body exceeds ${maxBodyBytes} bytes`);
      return;
    }
    if (step.kind === 'error') {
      fail('unreachable', `body: ${step.message}`);
      return;
    }
    const text = step.body.toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      fail('bad_body', `${statusLine} but the body is not JSON: ${snippet(text)}`);
      return;
    }
    const parsed = spec.schema!.safeParse(json);
    if (!parsed.success) {
      fail('bad_body', `${statusLine} but the body is rejected: ${formatIssues(parsed.error)}`);
      return;
    }
    attempt.settle({
      ok: true,
      statusCode: status,
      body: parsed.data,
      detail: `GET ${url.href}: ${statusLine}, body accepted`,
    });
  }
}

/** One GET, ready to send: where to connect and the request's bytes. */
interface Request {
  url: URL;
  host: string;
  port: number;
  text: string;
}

/** The request for `url`: the probe's headers, the target's, and `Connection: close`. */
function requestTo(
  url: URL,
  spec: { headers?: Record<string, string>; schema?: unknown },
): Request {
  const headers = new Map<string, [string, string]>();
  const set = (name: string, value: string) => headers.set(name.toLowerCase(), [name, value]);
  set('Host', url.host);
  set('Accept', spec.schema ? 'application/json' : '*/*');
  set('User-Agent', 'pit-probes');
  if (url.username || url.password) {
    const user = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    set('Authorization', `Basic ${Buffer.from(user).toString('base64')}`);
  }
  for (const [name, value] of Object.entries(spec.headers ?? {})) set(name, value);
  set('Connection', 'close');
  let text = `GET ${url.pathname || '/'}${url.search} HTTP/1.1\r\n`;
  for (const [name, value] of headers.values()) text += `${name}: ${value}\r\n`;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return { url, host, port, text: `${text}\r\n` };
}

/** `200 OK`: the status and its reason (the standard one when the server sent none). */
const statusLineOf = (head: ResponseHead): string =>
  `${head.status} ${head.reason || STATUS_CODES[head.status] || ''}`.trim();

/** Whether `host` is an IP address (no TLS server name is sent for one). */
const isIp = (host: string): boolean => /^[\d.]+$/.test(host) || host.includes(':');

function parseHttpUrl(value: string | URL): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ProbeError(
      'PROBE_INVALID_TARGET',
      `http probe target: url: ${JSON.stringify(String(value))} is not a valid URL`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ProbeError(
      'PROBE_INVALID_TARGET',
      `http probe target: url: ${url.href} must be http: or https:`,
    );
  }
  return url;
}

function snippet(text: string): string {
  const trimmed = text.trim();
  return JSON.stringify(trimmed.length > 80 ? `${trimmed.slice(0, 80)}…` : trimmed);
}
