import { promises as fs } from 'node:fs';
import { cleanup } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvent, cellPaths, silentLogger } from '@pit/cell-spec';
import { makeCell } from '../test/helpers.js';
import { createCellEventFeed } from './event-feed.js';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { waitFor } from '@pit/test-kit';
import { authorize, connectionAddressKey, isAllowedHost, type Credential } from './http-access.js';
import {
  startHttpServer,
  type ApprovalDecisionResult,
  type HttpHandlers,
  type HttpServer,
} from './http.js';
import { createMetricsRegistry } from './metrics.js';

let server: HttpServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await cleanup();
});

const TOKEN = 'test-token-0123456789-0123456789-0123456789';
const ALICE = 'alice-token-0123456789-0123456789-0123456789';
const CREDENTIALS: Credential[] = [
  { identity: 'operator', token: TOKEN },
  { identity: 'alice', token: ALICE },
];

async function start(
  cellsRoot: string,
  overrides: Partial<HttpHandlers> = {},
  limits: {
    maxConnections?: number;
    maxConnectionsPerAddress?: number;
    maxEventStreams?: number;
    maxEventStreamsPerAddress?: number;
    headerTimeoutMs?: number;
  } = {},
) {
  const metrics = createMetricsRegistry();
  metrics.counter('pit_restarts_total', 'Agents restarted.').inc();
  const decisions: Array<[string, string, unknown]> = [];
  const handlers: HttpHandlers = {
    health: () => ({ ok: true, uptime_s: 1 }),
    status: () => ({ cells: [], agents: [] }),
    metrics,
    events: createCellEventFeed({ cellsRoot, pollMs: 20 }),
    async decideApproval(id, decision, body): Promise<ApprovalDecisionResult> {
      if (id !== 'apr-1') return { ok: false, reason: 'not_found', message: `no approval ${id}` };
      decisions.push([id, decision, body]);
      return { ok: true, id, decision };
    },
    ...overrides,
  };
  server = await startHttpServer({
    listen: '127.0.0.1:0',
    credentials: CREDENTIALS,
    handlers,
    keepAliveMs: 50,
    ...limits,
  });
  return { server, decisions };
}

/** Reads server-sent events from a fetch response until `count` events arrived. */
async function readEvents(
  response: Response,
  count: number,
): Promise<Array<{ id?: string; event?: string; data: unknown }>> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const events: Array<{ id?: string; event?: string; data: unknown }> = [];
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let index: number;
    while ((index = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, index);
      buffer = buffer.slice(index + 2);
      const fields = Object.fromEntries(
        block
          .split('\n')
          .filter((line) => !line.startsWith(':') && line.includes(': '))
          .map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]),
      );
      if (fields.data)
        events.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) });
    }
  }
  await reader.cancel();
  return events;
}

describe('startHttpServer', () => {
  it('listens on 127.0.0.1 and serves /health, /metrics and /api/status', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { server } = await start(cell.root);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true, uptime_s: 1 });
    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    expect(await metrics.text()).toContain('pit_restarts_total 1');
    expect(await (await fetch(`${server.url}/api/status`)).json()).toEqual({
      cells: [],
      agents: [],
    });
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/`)).status).toBe(404);
  });

  it('answers 503 when the daemon is not healthy', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { server } = await start(cell.root, {
      health: () => ({ ok: false, reason: 'state dir unwritable' }),
    });
    expect((await fetch(`${server.url}/health`)).status).toBe(503);
  });

  it('refuses approvals without a token, with a wrong token, and accepts the right one', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { server, decisions } = await start(cell.root);
    const post = (path: string, headers: Record<string, string> = {}, body?: string) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers, ...(body ? { body } : {}) });
    const missing = await post('/api/approvals/apr-1/approve');
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toContain('Bearer');
    expect(
      (await post('/api/approvals/apr-1/approve', { authorization: 'Bearer wrong' })).status,
    ).toBe(401);
    expect(
      (await post('/api/approvals/apr-1/approve', { authorization: `Bearer ${TOKEN}x` })).status,
    ).toBe(401);
    expect(decisions).toEqual([]);
    const ok = await post(
      '/api/approvals/apr-1/deny',
      { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      JSON.stringify({ reason: 'not now' }),
    );
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ ok: true, id: 'apr-1', decision: 'deny' });
    expect(decisions).toEqual([['apr-1', 'deny', { reason: 'not now', by: 'operator' }]]);
    expect(
      (await post('/api/approvals/apr-2/approve', { authorization: `Bearer ${TOKEN}` })).status,
    ).toBe(404);
    expect(
      (
        await post(
          '/api/approvals/apr-1/approve',
          { authorization: `Bearer ${TOKEN}` },
          '{"unknown":1}',
        )
      ).status,
    ).toBe(400);
    expect(
      (await post('/api/approvals/apr-1/approve', { authorization: `Bearer ${TOKEN}` }, 'not json'))
        .status,
    ).toBe(400);
    expect((await fetch(`${server.url}/api/approvals/apr-1/approve`)).status).toBe(405);
  });

  it('refuses every mutating call when no token is configured', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { server } = await start(cell.root);
    server.setAccess({ credentials: [], allowedHosts: [] });
    const response = await fetch(`${server.url}/api/approvals/apr-1/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(response.status).toBe(403);
    expect(((await response.json()) as { error: string }).error).toContain('token_env');
  });

  it('streams a cell’s events as server-sent events: the backlog since a time, then new appends', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const events = cellPaths(cell.dir).events;
    await appendEvent(events, {
      event: 'agent_dead',
      agent: 'forge',
      reason: 'heartbeat stale',
      failing: ['heartbeat'],
      ts: '2030-01-01T00:00:00.000Z',
    });
    const { server } = await start(cell.root);
    const response = await fetch(
      `${server.url}/api/events?cell=${cell.uuid}&since=2029-01-01T00:00:00Z`,
    );
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reading = readEvents(response, 2);
    await appendEvent(events, {
      event: 'agent_revived',
      agent: 'forge',
      pid: 42,
      attempt: 1,
      reason: 'heartbeat stale',
      ts: '2030-01-01T00:00:05.000Z',
    });
    const received = await reading;
    expect(received.map((item) => item.event)).toEqual(['agent_dead', 'agent_revived']);
    expect(received[1]?.data).toMatchObject({ cell: cell.uuid, agent: 'forge', pid: 42 });
    const { ino, size } = await fs.stat(events);
    expect(received[1]?.id).toBe(`${cell.uuid}:${ino}:${size}`);
  });

  it('streams a kind cell-spec does not know as a plain message with all its fields, and skips a malformed line', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const events = cellPaths(cell.dir).events;
    const { server } = await start(cell.root);
    const reading = readEvents(
      await fetch(`${server.url}/api/events?cell=${cell.uuid}&since=2029-01-01T00:00:00Z`),
      2,
    );
    await fs.appendFile(
      events,
      [
        '{"ts":"2030-01-01T00:00:00.000Z","event":"agent_dead","agent":"forge"}', // no reason: skipped
        '{"ts":"2030-01-01T00:00:01.000Z","event":"budget_exceeded","agent":"forge","spent_usd":40.12}',
        '{"ts":"2030-01-01T00:00:02.000Z","event":"agent_healthy","agent":"forge"}',
        '',
      ].join('\n'),
    );
    const received = await reading;
    expect(received.map((item) => item.event)).toEqual([undefined, 'agent_healthy']);
    expect(received[0]?.data).toEqual({
      cell: cell.uuid,
      ts: '2030-01-01T00:00:01.000Z',
      event: 'budget_exceeded',
      agent: 'forge',
      spent_usd: 40.12,
    });
  });

  it('skips and reports a line over the limit instead of stalling on it, and streams what follows', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const events = cellPaths(cell.dir).events;
    const warnings: Array<[string, Record<string, unknown> | undefined]> = [];
    const logger = {
      ...silentLogger,
      warn: (message: string, fields?: Record<string, unknown>) =>
        void warnings.push([message, fields]),
    };
    const { server } = await start(cell.root, {
      events: createCellEventFeed({ cellsRoot: cell.root, pollMs: 20, logger }),
    });
    const reading = readEvents(
      await fetch(`${server.url}/api/events?cell=${cell.uuid}&since=2029-01-01T00:00:00Z`),
      2,
    );
    // 9 MiB without a newline (the old feed read 8 MiB at a time and never found its end), then its end.
    const huge = `{"ts":"2030-01-01T00:00:00.000Z","event":"x_huge","pad":"${'p'.repeat(9 * 1024 * 1024)}`;
    await fs.appendFile(events, huge);
    await appendEvent(events, {
      event: 'agent_dead',
      agent: 'forge',
      reason: 'x',
      failing: [],
      ts: '2030-01-01T00:00:01.000Z',
    });
    await appendEvent(events, {
      event: 'agent_healthy',
      agent: 'forge',
      ts: '2030-01-01T00:00:02.000Z',
    });
    const received = await reading;
    expect(received.map((item) => item.event)).toEqual(['agent_dead', 'agent_healthy']);
    expect(warnings).toEqual([
      [
        'event feed skipped an over-long line',
        expect.objectContaining({ path: events, bytes: huge.length }),
      ],
    ]);
  });

  it('resumes exactly after Last-Event-ID', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const events = cellPaths(cell.dir).events;
    const { server } = await start(cell.root);
    const all = await readEvents(await fetch(`${server.url}/api/events?cell=${cell.uuid}`), 3);
    expect(all.map((item) => item.event)).toEqual([
      'cell_created',
      'agent_joined',
      'cell_activated',
    ]);
    await appendEvent(events, { event: 'agent_dead', agent: 'forge', reason: 'x', failing: [] });
    const resumed = await readEvents(
      await fetch(`${server.url}/api/events?cell=${cell.uuid}`, {
        headers: { 'last-event-id': all[1]!.id! },
      }),
      2,
    );
    expect(resumed.map((item) => item.event)).toEqual(['cell_activated', 'agent_dead']);
  });

  it('streams every supervised cell when no cell is named, and validates the query', async () => {
    const first = await makeCell([{ name: 'forge' }]);
    const second = await makeCell([{ name: 'anvil' }], first.root);
    const { server } = await start(first.root);
    const received = await readEvents(await fetch(`${server.url}/api/events`), 6);
    expect(new Set(received.map((item) => (item.data as { cell: string }).cell))).toEqual(
      new Set([first.uuid, second.uuid]),
    );
    expect((await fetch(`${server.url}/api/events?cell=nope`)).status).toBe(400);
    expect((await fetch(`${server.url}/api/events?since=yesterday`)).status).toBe(400);
  });
});

describe('authorize', () => {
  it('accepts only an exact bearer token, and says whose it is', () => {
    expect(authorize(`Bearer ${TOKEN}`, CREDENTIALS)).toEqual({ ok: true, identity: 'operator' });
    expect(authorize(`bearer ${ALICE}`, CREDENTIALS)).toEqual({ ok: true, identity: 'alice' });
    expect(authorize(`Bearer ${TOKEN.slice(0, -1)}`, CREDENTIALS)).toMatchObject({
      ok: false,
      status: 401,
    });
    expect(authorize(`Basic ${TOKEN}`, CREDENTIALS)).toMatchObject({
      ok: false,
      status: 401,
      reason: 'missing bearer token',
    });
    expect(authorize(undefined, CREDENTIALS)).toMatchObject({ ok: false, status: 401 });
    expect(authorize(`Bearer ${TOKEN}`, [])).toMatchObject({ ok: false, status: 403 });
  });
});

describe('isAllowedHost', () => {
  const check = (
    host: string | undefined,
    localAddress = '127.0.0.1',
    allowedHosts: string[] = [],
  ) => isAllowedHost({ host, localAddress, port: 7420, allowedHosts });
  it('accepts the listen address, localhost on loopback, and configured names', () => {
    expect(check('127.0.0.1:7420')).toBe(true);
    expect(check('localhost:7420')).toBe(true);
    expect(check('LOCALHOST:7420')).toBe(true);
    expect(check('[::1]:7420', '::1')).toBe(true);
    expect(check('pit.example.org', '127.0.0.1', ['pit.example.org'])).toBe(true);
    expect(check('pit.example.org:8443', '127.0.0.1', ['pit.example.org:8443'])).toBe(true);
  });
  it('refuses a rebinding name, another port, another address and no Host at all', () => {
    expect(check('attacker.example:7420')).toBe(false);
    expect(check('attacker.example')).toBe(false);
    expect(check('127.0.0.1:7421')).toBe(false);
    expect(check('127.0.0.1')).toBe(false);
    expect(check('10.0.0.5:7420')).toBe(false);
    expect(check('localhost:7420', '10.0.0.5')).toBe(false);
    expect(check('pit.example.org:9999', '127.0.0.1', ['pit.example.org:8443'])).toBe(false);
    expect(check(undefined)).toBe(false);
    expect(check('a:b:c')).toBe(false);
  });
});

/** A raw request with any Host header (fetch does not let a caller set it). */
function rawGet(url: string, path: string, host: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = httpRequest(`${url}${path}`, { headers: { ...headers, host } }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

describe('the HTTP server against hostile callers', () => {
  it('refuses a DNS-rebinding Host on every route (421), and serves its own address', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { server } = await start(cell.root, { dashboard: () => '<html></html>' });
    for (const path of ['/api/status', '/api/events', '/metrics', '/', '/health']) {
      const refused = await rawGet(server.url, path, `attacker.example:${server.port}`);
      expect(refused.status, path).toBe(421);
      expect(refused.body).toContain('allowed_hosts');
    }
    expect((await rawGet(server.url, '/api/status', `127.0.0.1:${server.port}`)).status).toBe(200);
    expect((await rawGet(server.url, '/api/status', `localhost:${server.port}`)).status).toBe(200);
    server.setAccess({ credentials: CREDENTIALS, allowedHosts: ['pit.example.org'] });
    expect((await rawGet(server.url, '/api/status', 'pit.example.org')).status).toBe(200);
  });

  it('records the token’s identity on a decision and refuses a claimed `by`', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { server, decisions } = await start(cell.root);
    const post = (token: string, body: unknown) =>
      fetch(`${server.url}/api/approvals/apr-1/approve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const claimed = await post(ALICE, { by: 'operator' });
    expect(claimed.status).toBe(400);
    expect(((await claimed.json()) as { error: string }).error).toContain('identity');
    expect((await post(ALICE, { reason: 'ok' })).status).toBe(200);
    expect(decisions).toEqual([['apr-1', 'approve', { reason: 'ok', by: 'alice' }]]);
  });

  it('answers 503 to event streams beyond the cap, and takes one again when a stream closes', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { server } = await start(cell.root, {}, { maxEventStreams: 2 });
    const controllers = [new AbortController(), new AbortController()];
    const open = await Promise.all(
      controllers.map((controller) =>
        fetch(`${server.url}/api/events?cell=${cell.uuid}`, { signal: controller.signal }),
      ),
    );
    expect(open.map((response) => response.status)).toEqual([200, 200]);
    const refused = await fetch(`${server.url}/api/events?cell=${cell.uuid}`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('10');
    expect((await fetch(`${server.url}/api/status`)).status).toBe(200);
    controllers[0]!.abort();
    await waitFor(async () => {
      const again = await fetch(`${server.url}/api/events?cell=${cell.uuid}`);
      await again.body?.cancel();
      return again.status === 200;
    }, 5_000);
    controllers[1]!.abort();
  });

  it('answers 503 to event streams beyond the per-address cap while the total cap has room', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { server } = await start(
      cell.root,
      {},
      { maxEventStreams: 10, maxEventStreamsPerAddress: 2 },
    );
    const controllers = [new AbortController(), new AbortController()];
    const open = await Promise.all(
      controllers.map((controller) =>
        fetch(`${server.url}/api/events?cell=${cell.uuid}`, { signal: controller.signal }),
      ),
    );
    expect(open.map((response) => response.status)).toEqual([200, 200]);
    const refused = await fetch(`${server.url}/api/events?cell=${cell.uuid}`);
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: string }).error).toContain('from this address (2)');
    controllers[0]!.abort();
    await waitFor(async () => {
      const again = await fetch(`${server.url}/api/events?cell=${cell.uuid}`);
      await again.body?.cancel();
      return again.status === 200;
    }, 5_000);
    controllers[1]!.abort();
  });

  it('closes connections beyond the cap at accept, and drops one that sends no headers', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    // A header timeout of 2 s: with less, a stall of the test's loop while it connects the six
    // could let the first three be dropped before the last three come (then they are not refused).
    const { server } = await start(cell.root, {}, { maxConnections: 3, headerTimeoutMs: 2_000 });
    const sockets: Socket[] = [];
    const closed = new Set<Socket>();
    try {
      for (let index = 0; index < 6; index += 1) {
        const socket = connect(server.port, '127.0.0.1');
        socket.on('error', () => undefined);
        socket.resume(); // read, so that the server's close is seen
        socket.on('close', () => closed.add(socket));
        sockets.push(socket);
        await new Promise((resolve) => socket.once('connect', resolve));
      }
      // Three are held, three closed at once; then the silent three are dropped by the header timeout.
      await waitFor(() => closed.size >= 3, 15_000);
      expect(server.refusedConnections()).toBeGreaterThanOrEqual(3);
      await waitFor(() => closed.size === 6, 15_000, 'the silent connections closed');
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  it('caps the connections of one address, so that a flood from 127.0.0.2 leaves 127.0.0.1 served', async () => {
    const cell = await makeCell([{ name: 'forge' }]);
    const { server } = await start(
      cell.root,
      {},
      { maxConnections: 8, maxConnectionsPerAddress: 4, headerTimeoutMs: 10_000 },
    );
    const sockets: Socket[] = [];
    const closed = new Set<Socket>();
    try {
      // The flood: as many connections as the whole server takes, all from one address.
      for (let index = 0; index < 8; index += 1) {
        const socket = connect({ port: server.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
        socket.on('error', () => undefined);
        socket.resume();
        socket.on('close', () => closed.add(socket));
        sockets.push(socket);
        await new Promise((resolve) => socket.once('connect', resolve));
      }
      await waitFor(() => closed.size >= 4, 10_000, 'the excess of 127.0.0.2 closed');
      expect(server.refusedConnections()).toBe(4);
      // Another address is still served, several connections at once.
      const answers = await Promise.all(
        [0, 1, 2].map(() => fetch(`${server.url}/health`).then((response) => response.status)),
      );
      expect(answers).toEqual([200, 200, 200]);
      // The flood's four held connections are still open: the cap counted them, not the others.
      expect(sockets.filter((socket) => !closed.has(socket))).toHaveLength(4);
      // One of them closes: 127.0.0.2 may open one more.
      sockets[0]!.destroy();
      await waitFor(() => closed.has(sockets[0]!), 5_000);
      const again = connect({ port: server.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      sockets.push(again);
      again.on('error', () => undefined);
      again.write(
        `GET /health HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: close\r\n\r\n`,
      );
      const reply = await new Promise<string>((resolve) => {
        let text = '';
        again.on('data', (chunk: Buffer) => (text += chunk.toString()));
        again.on('close', () => resolve(text));
      });
      expect(reply).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
});

describe('connectionAddressKey', () => {
  it('counts IPv4 (mapped or not) by address and IPv6 by its /64', () => {
    expect(connectionAddressKey('127.0.0.2')).toBe('127.0.0.2');
    expect(connectionAddressKey('::ffff:127.0.0.2')).toBe('127.0.0.2');
    expect(connectionAddressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(connectionAddressKey('2001:db8:1:2::2')).toBe('2001:db8:1:2::/64');
    expect(connectionAddressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(connectionAddressKey('::1')).toBe('0:0:0:0::/64');
  });
});
