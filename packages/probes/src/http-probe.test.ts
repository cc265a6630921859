import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  closedPort,
  startHttpServer,
  startHungServer,
  type RunningServer,
} from './__fixtures__/targets.js';
import { ProbeError } from './errors.js';
import { GatewayHealthSchema, httpProbe } from './http-probe.js';

const servers: RunningServer[] = [];
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
});
