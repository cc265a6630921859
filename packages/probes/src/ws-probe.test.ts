import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import {
  closedPort,
  startHttpServer,
  startHungServer,
  type RunningServer,
} from './__fixtures__/targets.js';
import { ProbeError } from './errors.js';
import { wsProbe } from './ws-probe.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

async function wsServer(): Promise<{ url: string; closes: number[] }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const closes: number[] = [];
  server.on('connection', (socket) => socket.on('close', (code) => closes.push(code)));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => resolve());
      }),
  );
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/bus`, closes };
}

function track(server: RunningServer): RunningServer {
  cleanups.push(() => server.close());
  return server;
}

describe('wsProbe', () => {
  it('is ok when the handshake completes, and closes cleanly with 1000', async () => {
    const server = await wsServer();
    const result = await wsProbe(server.url, { timeoutMs: 5000 });
    expect(result).toMatchObject({ kind: 'ws', ok: true });
    await expect.poll(() => server.closes, { timeout: 5000 }).toEqual([1000]);
  });

  it('fails with bad_status when the server refuses the upgrade', async () => {
    const plain = track(
      await startHttpServer((_request, response) => {
        response.writeHead(404);
        response.end('no websockets here');
      }),
    );
    const result = await wsProbe(`ws://127.0.0.1:${plain.port}/bus`);
    expect(result).toMatchObject({ ok: false, failure: 'bad_status', statusCode: 404 });
  });

  it('reports a closed port as refused', async () => {
    const port = await closedPort();
    const result = await wsProbe(`ws://127.0.0.1:${port}/`);
    expect(result).toMatchObject({ ok: false, failure: 'refused' });
  });

  it('times out on a hung server', async () => {
    const hung = track(await startHungServer());
    const result = await wsProbe(`ws://127.0.0.1:${hung.port}/`, { timeoutMs: 300 });
    expect(result).toMatchObject({ ok: false, failure: 'timeout' });
  });

  it('accepts http: URLs as ws:', async () => {
    const server = await wsServer();
    const result = await wsProbe({ url: server.url.replace('ws:', 'http:') });
    expect(result.ok).toBe(true);
  });

  it.each(['::nope', 'ftp://127.0.0.1/'])('refuses %j with PROBE_INVALID_TARGET', async (url) => {
    const error = await wsProbe(url).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProbeError);
    expect((error as ProbeError).code).toBe('PROBE_INVALID_TARGET');
  });
});
