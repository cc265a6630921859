import { promises as fs } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanup, spawnTsx, tempDir, waitFor } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import type { FleetStatus } from '../src/supervisor.js';

// An agent watched through its `health_url` only (a gateway on another machine, say): the real
// daemon probes a real HTTP server on 127.0.0.1 and follows what it answers.

const RUN_DAEMON = fileURLToPath(new URL('./fixtures/run-daemon.ts', import.meta.url));

afterEach(cleanup);

describe('an agent watched by its health_url (e2e, a real daemon)', () => {
  it('is healthy while the URL answers 2xx, dead when it answers 503 or hangs, healthy again after', async () => {
    let answer: 'ok' | 'down' | 'hang' = 'ok';
    const seen: string[] = [];
    const sockets = new Set<Socket>();
    const server = createServer((request, response) => {
      seen.push(`${request.method} ${request.url} ${request.headers.connection}`);
      if (answer === 'hang') return;
      response.writeHead(answer === 'ok' ? 200 : 503).end();
    });
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const base = await tempDir('pit-http-probe-');
      await fs.mkdir(join(base, 'missions'));
      const configPath = join(base, 'pit.toml');
      await fs.writeFile(
        configPath,
        [
          '[daemon]',
          'state_dir = "state"',
          '[daemon.http]',
          'listen = "127.0.0.1:0"',
          '[bus]',
          'enabled = false',
          '[checkpoints]',
          'interval_s = 0',
          '[cells]',
          'root = "missions"',
          '[policy.defaults]',
          'mode = "never"',
          'dead_after = "0s"',
          '[agents.gateway]',
          'cell = "none"',
          `cwd = "${base}"`,
          `probes = { health_url = "http://127.0.0.1:${port}/health?deep=1", interval_s = 0.2, timeout_s = 0.5, failure_threshold = 2 }`,
        ].join('\n'),
        { mode: 0o600 },
      );
      const daemon = spawnTsx(RUN_DAEMON, [configPath]);
      const url = await waitFor(
        () => {
          if (daemon.output().includes('FAILED ')) throw new Error(daemon.output());
          return /^READY (\S+) /m.exec(daemon.output())?.[1];
        },
        30_000,
        'the daemon to start',
      );
      const health = async () =>
        ((await (await fetch(`${url}/api/status`)).json()) as FleetStatus).agents.find(
          (agent) => agent.agent === 'gateway',
        )?.health;
      const becomes = (want: string, what: string) =>
        waitFor(async () => ((await health()) === want ? true : undefined), 20_000, what);

      await becomes('healthy', 'the gateway healthy');
      expect(seen[0]).toBe('GET /health?deep=1 close');
      answer = 'down';
      await becomes('dead', 'the gateway dead on 503');
      answer = 'ok';
      await becomes('healthy', 'the gateway healthy again');
      answer = 'hang';
      await becomes('dead', 'the gateway dead when it hangs');
      // A hung run's connection is closed at its timeout: none piles up.
      expect(sockets.size).toBeLessThanOrEqual(2);
      answer = 'ok';
      await becomes('healthy', 'the gateway healthy after the hang');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }, 90_000);
});
