import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ProbeError } from './errors.js';
import {
  createHealthServer,
  HealthResponseSchema,
  type HealthServer,
  type HealthServerOptions,
} from './health-server.js';
import { GatewayHealthSchema, httpProbe } from './http-probe.js';

const servers: HealthServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function start(options: HealthServerOptions) {
  const server = createHealthServer(options);
  servers.push(server);
  return server.listen();
}

function call(
  method: string,
  url: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe('createHealthServer', () => {
  it('answers GET /health with the gateway fields, on 127.0.0.1 by default', async () => {
    const health = await start({ service: 'forge' });
    expect(health.host).toBe('127.0.0.1');
    expect(health.url).toBe(`http://127.0.0.1:${health.port}/health`);
    const response = await call('GET', health.url);
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('application/json');
    const body = HealthResponseSchema.parse(JSON.parse(response.body));
    expect(body).toMatchObject({
      status: 'ok',
      service: 'forge',
      connected_clients: 0,
      ports: [health.port],
    });
    expect(Object.keys(body).sort()).toEqual([
      'connected_clients',
      'ports',
      'service',
      'status',
      'ts',
      'uptime_seconds',
    ]);
    expect(Date.parse(body.ts)).not.toBeNaN();
  });

  it('takes the live fields from the callback and time from the injected clock', async () => {
    const health = await start({
      service: 'gateway',
      startedAt: 1_800_000_000_000,
      now: () => 1_800_000_090_500,
      live: async () => ({ connected_clients: 3, ports: [8642, 8643], model: 'opus' }),
    });
    const body = JSON.parse((await call('GET', health.url)).body);
    expect(body).toEqual({
      model: 'opus',
      status: 'ok',
      service: 'gateway',
      uptime_seconds: 90,
      ts: new Date(1_800_000_090_500).toISOString(),
      connected_clients: 3,
      ports: [8642, 8643],
    });
  });

  it('answers 503 when the service says it is not ok, so a plain 2xx probe sees it', async () => {
    const health = await start({ service: 'forge', live: () => ({ status: 'degraded' }) });
    const response = await call('GET', health.url);
    expect(response.status).toBe(503);
    expect(JSON.parse(response.body).status).toBe('degraded');
    await expect(httpProbe(health.url)).resolves.toMatchObject({
      ok: false,
      failure: 'bad_status',
      statusCode: 503,
    });
  });

  it('answers 503 {status: "error"} when the callback throws or returns bad fields', async () => {
    const throwing = await start({
      service: 'forge',
      live: () => {
        throw new Error('db gone');
      },
    });
    const response = await call('GET', throwing.url);
    expect(response.status).toBe(503);
    expect(JSON.parse(response.body)).toMatchObject({
      status: 'error',
      service: 'forge',
      error: 'db gone',
    });
    const bad = await start({ service: 'forge', live: () => ({ connected_clients: -1 }) });
    expect(JSON.parse((await call('GET', bad.url)).body).error).toMatch(/connected_clients/);
  });

  it('supports HEAD with the same status and headers and no body', async () => {
    const health = await start({ service: 'forge' });
    const response = await call('HEAD', health.url);
    expect(response.status).toBe(200);
    expect(Number(response.headers['content-length'])).toBeGreaterThan(0);
    expect(response.body).toBe('');
  });

  it('answers 404 to anything else', async () => {
    const health = await start({ service: 'forge' });
    const base = `http://127.0.0.1:${health.port}`;
    expect((await call('GET', `${base}/`)).status).toBe(404);
    expect((await call('GET', `${base}/healthz`)).status).toBe(404);
    expect((await call('POST', health.url)).status).toBe(404);
    expect((await call('GET', `${health.url}?verbose=1`)).status).toBe(200);
  });

  it('is what httpProbe with GatewayHealthSchema expects', async () => {
    const health = await start({ service: 'forge' });
    await expect(
      httpProbe({ url: health.url, schema: GatewayHealthSchema }),
    ).resolves.toMatchObject({ ok: true, body: { status: 'ok', service: 'forge' } });
  });

  it('serves another path when configured', async () => {
    const health = await start({ service: 'forge', path: '/status' });
    expect(health.url.endsWith('/status')).toBe(true);
    expect((await call('GET', health.url)).status).toBe(200);
  });

  it('fails with PROBE_LISTEN_FAILED when the port is taken', async () => {
    const first = await start({ service: 'forge' });
    const error = await start({ service: 'other', port: first.port }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ProbeError);
    expect((error as ProbeError).code).toBe('PROBE_LISTEN_FAILED');
    expect((error as ProbeError).message).toContain(`127.0.0.1:${first.port}`);
  });

  it('refuses bad options and listen() after close()', async () => {
    expect(() => createHealthServer({ service: '' })).toThrow(/service/);
    expect(() => createHealthServer({ service: 'forge', path: 'health' })).toThrow(/path/);
    const server = createHealthServer({ service: 'forge' });
    await server.listen();
    await server.close();
    await expect(server.listen()).rejects.toMatchObject({ code: 'PROBE_STOPPED' });
  });
});
