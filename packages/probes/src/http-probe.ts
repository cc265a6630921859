import {
  Agent as HttpAgent,
  request as httpRequest,
  STATUS_CODES,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { z } from 'zod';
import { formatIssues } from '@pit/cell-spec';
import { ProbeError } from './errors.js';
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
  /** Extra request headers. */
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

const HttpTargetSchema = z.strictObject({
  url: z.union([z.string(), z.instanceof(URL)]),
  headers: z.record(z.string(), z.string()).optional(),
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

/**
 * One connection per request, closed after it (`Connection: close`), as `agent: false` gives,
 * but through one agent per protocol instead of a new agent for every request of a fleet.
 */
const httpAgent = new HttpAgent({ keepAlive: false });
const httpsAgent = new HttpsAgent({ keepAlive: false });

/** The default body cap of {@link httpProbe}, bytes. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/**
 * `GET`s a URL: ok on a 2xx status (and, with `schema`, a JSON body the schema accepts).
 * Redirects are not followed unless `followRedirects` allows it; bodies are capped; a hung
 * server ends in `failure: 'timeout'` when the timeout expires. A string target is the URL.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a URL that is not http(s); PROBE_INVALID_OPTIONS.
 * @example
 * const result = await httpProbe({ url: 'http://127.0.0.1:8642/health', schema: GatewayHealthSchema }, { timeoutMs: 2000 });
 */
export async function httpProbe(
  target: HttpTarget | string | URL,
  options?: ProbeOptions,
): Promise<HttpProbeResult> {
  const spec = parseTarget(
    'http',
    HttpTargetSchema,
    typeof target === 'string' || target instanceof URL ? { url: target } : target,
  );
  const url = parseHttpUrl(spec.url);
  const maxBodyBytes = spec.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return runProbe<HttpProbeResult>(
    { kind: 'http', describe: `GET ${url.href}` },
    options,
    (attempt) => {
      get(attempt, url, spec.followRedirects ?? 0);
    },
  );

  function get(attempt: Attempt<HttpProbeResult>, current: URL, redirectsLeft: number): void {
    const requestOptions: RequestOptions & { rejectUnauthorized?: boolean } = {
      method: 'GET',
      agent: current.protocol === 'https:' ? httpsAgent : httpAgent,
      headers: {
        accept: spec.schema ? 'application/json' : '*/*',
        'user-agent': 'pit-probes',
        ...spec.headers,
      },
    };
    if (current.protocol === 'https:')
      requestOptions.rejectUnauthorized = spec.rejectUnauthorized ?? true;
    const request = (current.protocol === 'https:' ? httpsRequest : httpRequest)(
      current,
      requestOptions,
    );
    // Settled, timed out or aborted: drop the connection (destroy() without an error builds no AbortError).
    attempt.onSettled(() => request.destroy());
    request.on('error', (error) => {
      if (attempt.settled) return;
      attempt.settle({
        ok: false,
        failure: classifySocketError(error),
        detail: `GET ${current.href}: ${describeError(error)}`,
      });
    });
    request.once('response', (response) => {
      const status = response.statusCode ?? 0;
      const statusLine = `${status} ${response.statusMessage || STATUS_CODES[status] || ''}`.trim();
      const location = response.headers.location;
      if (status >= 300 && status < 400 && location !== undefined) {
        response.destroy();
        if (redirectsLeft <= 0) {
          attempt.settle({
            ok: false,
            failure: 'bad_status',
            statusCode: status,
            detail: `GET ${current.href}: ${statusLine} to ${location} (redirect not followed)`,
          });
          return;
        }
        let next: URL;
        try {
          next = new URL(location, current);
        } catch {
          attempt.settle({
            ok: false,
            failure: 'bad_status',
            statusCode: status,
            detail: `GET ${current.href}: ${statusLine} to an invalid location ${JSON.stringify(location)}`,
          });
          return;
        }
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          attempt.settle({
            ok: false,
            failure: 'bad_status',
            statusCode: status,
            detail: `GET ${current.href}: redirect to a non-http URL ${next.href}`,
          });
          return;
        }
        get(attempt, next, redirectsLeft - 1);
        return;
      }
      if (status < 200 || status > 299) {
        response.destroy();
        attempt.settle({
          ok: false,
          failure: 'bad_status',
          statusCode: status,
          detail: `GET ${current.href}: ${statusLine}`,
        });
        return;
      }
      if (!spec.schema) {
        response.destroy();
        attempt.settle({
          ok: true,
          statusCode: status,
          detail: `GET ${current.href}: ${statusLine}`,
        });
        return;
      }
      checkBody(attempt, current, response, statusLine, spec.schema);
    });
    request.end();
  }

  function checkBody(
    attempt: Attempt<HttpProbeResult>,
    current: URL,
    response: IncomingMessage,
    statusLine: string,
    schema: z.ZodType,
  ): void {
    const status = response.statusCode ?? 0;
    const declared = Number(response.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBodyBytes) {
      response.destroy();
      attempt.settle({
        ok: false,
        failure: 'bad_body',
        statusCode: status,
        detail: `GET ${current.href}: ${statusLine} but the body (${declared} bytes) exceeds ${maxBodyBytes} bytes`,
      });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBodyBytes) {
        response.destroy();
        attempt.settle({
          ok: false,
          failure: 'bad_body',
          statusCode: status,
          detail: `GET ${current.href}: ${statusLine} but the body exceeds ${maxBodyBytes} bytes`,
        });
        return;
      }
      chunks.push(chunk);
    });
    response.on('error', (error) => {
      if (attempt.settled) return;
      attempt.settle({
        ok: false,
        failure: 'unreachable',
        statusCode: status,
        detail: `GET ${current.href}: body: ${describeError(error)}`,
      });
    });
    response.once('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        attempt.settle({
          ok: false,
          failure: 'bad_body',
          statusCode: status,
          detail: `GET ${current.href}: ${statusLine} but the body is not JSON: ${snippet(text)}`,
        });
        return;
      }
      const parsed = schema.safeParse(json);
      if (!parsed.success) {
        attempt.settle({
          ok: false,
          failure: 'bad_body',
          statusCode: status,
          detail: `GET ${current.href}: ${statusLine} but the body is rejected: ${formatIssues(parsed.error)}`,
        });
        return;
      }
      attempt.settle({
        ok: true,
        statusCode: status,
        body: parsed.data,
        detail: `GET ${current.href}: ${statusLine}, body accepted`,
      });
    });
  }
}

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
