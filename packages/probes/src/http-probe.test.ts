import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import {
  closedPort,
  startHttpServer,
  startHungServer,
  startRawHttpServer,
  type RunningServer,
} from './__fixtures__/targets.js';
import { ProbeError } from './errors.js';
import { createHttpProbe, GatewayHealthSchema, httpProbe } from './http-probe.js';

const servers: RunningServer[] = [];

/** openssl makes the https test's certificate; without it that test is skipped, and says so. */
const opensslInstalled = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
if (!opensslInstalled)
  console.warn('openssl is not installed: the https probe test is skipped (.ci/run installs it)');
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function server(handler: Parameters<typeof startHttpServer>[0]): Promise<RunningServer> {
  const started = await startHttpServer(handler);
  servers.push(started);
  return started;
}

function json(body: unknown, status = 200) {
  return (_request: unknown, response: import('node:http').ServerResponse) => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body));
  };
}

describe('httpProbe', () => {
  it('is ok on a 2xx from a live server', async () => {
    const live = await server(json({ status: 'ok' }));
    const result = await httpProbe(`${live.url}/health`, { timeoutMs: 5000 });
    expect(result).toMatchObject({ kind: 'http', ok: true, statusCode: 200 });
    expect(result.detail).toBe(`GET ${live.url}/health: 200 OK`);
  });

  it('fails with bad_status on a non-2xx answer', async () => {
    const live = await server(json({ status: 'down' }, 503));
    const result = await httpProbe(`${live.url}/health`);
    expect(result).toMatchObject({ ok: false, failure: 'bad_status', statusCode: 503 });
    expect(result.detail).toContain('503 Service Unavailable');
  });

  it('times out on a hung server that accepts and never answers, and frees the connection', async () => {
    const hung = await startHungServer();
    servers.push(hung);
    const result = await httpProbe(`${hung.url}/health`, { timeoutMs: 300 });
    expect(result).toMatchObject({ ok: false, failure: 'timeout' });
    expect(result.detail).toContain('no answer within 300 ms');
    expect(result.latencyMs).toBeGreaterThanOrEqual(299);
    await expect.poll(() => hung.connections(), { timeout: 5000 }).toBe(0);
  });

  it('reports a closed port as refused', async () => {
    const port = await closedPort();
    const result = await httpProbe(`http://127.0.0.1:${port}/health`);
    expect(result).toMatchObject({ ok: false, failure: 'refused' });
  });

  it('accepts a gateway\'s {status: "ok"} body with GatewayHealthSchema', async () => {
    const live = await server(json({ status: 'ok', uptime_seconds: 3 }));
    const result = await httpProbe({ url: `${live.url}/health`, schema: GatewayHealthSchema });
    expect(result).toMatchObject({ ok: true, body: { status: 'ok', uptime_seconds: 3 } });
  });

  it('rejects a body the schema refuses, naming the field', async () => {
    const live = await server(json({ status: 'starting' }));
    const result = await httpProbe({ url: `${live.url}/health`, schema: GatewayHealthSchema });
    expect(result).toMatchObject({ ok: false, failure: 'bad_body', statusCode: 200 });
    expect(result.detail).toMatch(/status: /);
  });

  it('rejects a body that is not JSON when a schema is given', async () => {
    const live = await server((_request, response) => response.end('<html>fine</html>'));
    const result = await httpProbe({ url: live.url, schema: z.object({ status: z.string() }) });
    expect(result).toMatchObject({ ok: false, failure: 'bad_body' });
    expect(result.detail).toContain('not JSON');
  });

  it('caps the body it reads', async () => {
    const big = 'x'.repeat(200_000);
    const live = await server((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.write('{"status":"ok","pad":"');
      response.write(big);
      response.end('"}');
    });
    const result = await httpProbe({
      url: live.url,
      schema: GatewayHealthSchema,
      maxBodyBytes: 1024,
    });
    expect(result).toMatchObject({ ok: false, failure: 'bad_body' });
    expect(result.detail).toContain('exceeds 1024 bytes');
  });

  it('does not follow redirects unless allowed', async () => {
    const live = await server((request, response) => {
      if (request.url === '/old') {
        response.writeHead(302, { location: '/health' });
        response.end();
        return;
      }
      json({ status: 'ok' })(request, response);
    });
    const refused = await httpProbe(`${live.url}/old`);
    expect(refused).toMatchObject({ ok: false, failure: 'bad_status', statusCode: 302 });
    expect(refused.detail).toContain('redirect not followed');
    const followed = await httpProbe({
      url: `${live.url}/old`,
      followRedirects: 1,
      schema: GatewayHealthSchema,
    });
    expect(followed).toMatchObject({ ok: true, statusCode: 200 });
  });

  it('sends the configured headers', async () => {
    let seen: string | undefined;
    const live = await server((request, response) => {
      seen = request.headers.authorization;
      response.end();
    });
    await httpProbe({ url: live.url, headers: { authorization: 'Bearer t0ken' } });
    expect(seen).toBe('Bearer t0ken');
  });

  it('ends promptly with "aborted" when the caller aborts a hung request', async () => {
    const hung = await startHungServer();
    servers.push(hung);
    const controller = new AbortController();
    const pending = httpProbe(hung.url, { timeoutMs: 30_000, signal: controller.signal });
    await expect.poll(() => hung.connections(), { timeout: 5000 }).toBe(1);
    controller.abort();
    const result = await pending;
    expect(result).toMatchObject({ ok: false, failure: 'aborted' });
    expect(result.latencyMs).toBeLessThan(30_000);
  });

  it.each(['not a url', 'ftp://127.0.0.1/health', 'file:///etc/passwd'])(
    'refuses %j with PROBE_INVALID_TARGET',
    async (url) => {
      const error = await httpProbe(url).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ProbeError);
      expect((error as ProbeError).code).toBe('PROBE_INVALID_TARGET');
    },
  );

  it('reads a chunked body split across many segments, and skips an interim 100 response', async () => {
    const raw = await startRawHttpServer([
      'HTTP/1.1 100 Continue\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
      '5\r\n{"sta\r\n',
      '3;ext=1\r\ntus\r\n',
      'a\r\n":"ok","n"\r\n3\r\n:1}\r\n',
      '0\r\nX-Trailer: yes\r\n\r\n',
    ]);
    servers.push(raw);
    const result = await httpProbe({ url: `${raw.url}/health`, schema: GatewayHealthSchema });
    expect(result).toMatchObject({ ok: true, statusCode: 200, body: { status: 'ok', n: 1 } });
    expect(result.detail).toBe(`GET ${raw.url}/health: 200 OK, body accepted`);
  });

  it('reads a body by its Content-Length, and a body that ends with the connection', async () => {
    const byLength = await startRawHttpServer([
      'HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{"status"',
      ':"ok"}',
    ]);
    const byClose = await startRawHttpServer(['HTTP/1.0 200 OK\r\n\r\n{"status":', '"ok"}']);
    servers.push(byLength, byClose);
    for (const raw of [byLength, byClose]) {
      const result = await httpProbe({ url: raw.url, schema: GatewayHealthSchema });
      expect(result).toMatchObject({ ok: true, body: { status: 'ok' } });
    }
  });

  it('fails a response cut before its declared length, or one that is not HTTP', async () => {
    const cut = await startRawHttpServer([
      'HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{"status":"ok"}',
    ]);
    const garbage = await startRawHttpServer(['SSH-2.0-OpenSSH_9.2\r\n\r\n']);
    const silent = await startRawHttpServer([]);
    servers.push(cut, garbage, silent);
    const cutResult = await httpProbe({ url: cut.url, schema: GatewayHealthSchema });
    expect(cutResult).toMatchObject({ ok: false, failure: 'unreachable', statusCode: 200 });
    expect(cutResult.detail).toContain('closed before the end of the body');
    const garbageResult = await httpProbe(garbage.url);
    expect(garbageResult).toMatchObject({ ok: false, failure: 'unreachable' });
    expect(garbageResult.detail).toContain('not an HTTP/1.x response: "SSH-2.0-OpenSSH_9.2"');
    const silentResult = await httpProbe(silent.url);
    expect(silentResult).toMatchObject({ ok: false, failure: 'unreachable' });
    expect(silentResult.detail).toContain('closed before a response');
  });

  it('fails response headers beyond 16 KiB instead of reading them forever', async () => {
    const raw = await startRawHttpServer([
      'HTTP/1.1 200 OK\r\n',
      ...Array.from({ length: 40 }, (_, index) => `X-Pad-${index}: ${'y'.repeat(1000)}\r\n`),
      '\r\n',
    ]);
    servers.push(raw);
    const result = await httpProbe(raw.url);
    expect(result).toMatchObject({ ok: false, failure: 'unreachable' });
    expect(result.detail).toContain('response headers exceed 16384 bytes');
  });

  it('sends one well-formed request: host, credentials from the URL, its headers, Connection: close', async () => {
    const raw = await startRawHttpServer(['HTTP/1.1 204 No Content\r\n\r\n']);
    servers.push(raw);
    const probe = createHttpProbe({
      url: `http://op%40pit:s3cret@127.0.0.1:${raw.port}/health/deep?full=1`,
      headers: { 'User-Agent': 'fleet-check', 'X-Fleet': 'north' },
    });
    expect(await probe()).toMatchObject({ ok: true, statusCode: 204 });
    expect(await probe()).toMatchObject({ ok: true, statusCode: 204 });
    expect(raw.requests).toHaveLength(2);
    const [line, ...headers] = raw.requests[0]!.split('\r\n');
    expect(line).toBe('GET /health/deep?full=1 HTTP/1.1');
    expect(headers).toEqual(
      expect.arrayContaining([
        `Host: 127.0.0.1:${raw.port}`,
        `Authorization: Basic ${Buffer.from('op@pit:s3cret').toString('base64')}`,
        'User-Agent: fleet-check',
        'X-Fleet: north',
        'Connection: close',
      ]),
    );
    expect(headers.filter((header) => /^user-agent:/i.test(header))).toHaveLength(1);
  });

  it('refuses a header that would split the request, with PROBE_INVALID_TARGET', () => {
    expect(() =>
      createHttpProbe({ url: 'http://127.0.0.1:1/', headers: { 'X-A': 'b\r\nX-Injected: 1' } }),
    ).toThrow(/headers\.X-A: must be printable latin-1 text without line breaks/);
    expect(() =>
      createHttpProbe({ url: 'http://127.0.0.1:1/', headers: { 'Bad Name': 'x' } }),
    ).toThrow(ProbeError);
  });

  it.skipIf(!opensslInstalled)(
    'checks an https server certificate unless told not to',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'pit-tls-'));
      try {
        execFileSync(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:prime256v1',
            '-nodes',
            '-subj',
            '/CN=localhost',
            '-addext',
            'subjectAltName=IP:127.0.0.1',
            '-days',
            '1',
            '-keyout',
            join(dir, 'key.pem'),
            '-out',
            join(dir, 'cert.pem'),
          ],
          { stdio: 'ignore' },
        );
        const tls = createHttpsServer(
          { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
          (_request, response) => response.end('{"status":"ok"}'),
        );
        tls.listen(0, '127.0.0.1');
        await once(tls, 'listening');
        const url = `https://127.0.0.1:${(tls.address() as AddressInfo).port}/health`;
        try {
          const checked = await httpProbe({ url, schema: GatewayHealthSchema });
          expect(checked).toMatchObject({ ok: false, failure: 'unreachable' });
          expect(checked.detail).toMatch(/self[- ]signed/i);
          const unchecked = await httpProbe({
            url,
            schema: GatewayHealthSchema,
            rejectUnauthorized: false,
          });
          expect(unchecked).toMatchObject({ ok: true, statusCode: 200, body: { status: 'ok' } });
        } finally {
          tls.closeAllConnections();
          await new Promise((resolve) => tls.close(resolve));
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
