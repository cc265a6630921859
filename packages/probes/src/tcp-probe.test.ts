import { afterEach, describe, expect, it } from 'vitest';
import {
  closedPort,
  startHttpServer,
  startHungServer,
  type RunningServer,
} from './__fixtures__/targets.js';
import { ProbeError } from './errors.js';
import { tcpProbe } from './tcp-probe.js';

const servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

describe('tcpProbe', () => {
  it('is ok when the port accepts a connection', async () => {
    const server = await startHttpServer((_request, response) => response.end());
    servers.push(server);
    const before = Date.now();
    const result = await tcpProbe({ host: '127.0.0.1', port: server.port }, { timeoutMs: 5000 });
    expect(result).toMatchObject({
      kind: 'tcp',
      ok: true,
      detail: `connected to 127.0.0.1:${server.port}`,
    });
    expect(result.failure).toBeUndefined();
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
    expect(result.observedAt).toBeGreaterThanOrEqual(before);
  });

  it('reports a closed port as refused, not as an exception', async () => {
    const port = await closedPort();
    const result = await tcpProbe({ host: '127.0.0.1', port }, { timeoutMs: 5000 });
    expect(result).toMatchObject({ ok: false, failure: 'refused' });
    expect(result.detail).toContain('ECONNREFUSED');
  });

  it('counts a hung server that accepts connections as reachable (TCP only checks the connect)', async () => {
    const server = await startHungServer();
    servers.push(server);
    const result = await tcpProbe({ host: '127.0.0.1', port: server.port });
    expect(result.ok).toBe(true);
  });

  it('stamps observedAt from the injected clock', async () => {
    const port = await closedPort();
    const result = await tcpProbe({ host: '127.0.0.1', port }, { now: () => 1_700_000_000_000 });
    expect(result.observedAt).toBe(1_700_000_000_000);
  });

  it('ends with failure "aborted" when the caller aborts', async () => {
    const port = await closedPort();
    const result = await tcpProbe({ host: '127.0.0.1', port }, { signal: AbortSignal.abort() });
    expect(result).toMatchObject({ ok: false, failure: 'aborted' });
  });

  it.each([
    [{ host: '127.0.0.1', port: 0 }, /port/],
    [{ host: '127.0.0.1', port: 70_000 }, /port/],
    [{ host: '', port: 80 }, /host/],
  ])('refuses a target that cannot be probed: %j', async (target, message) => {
    const error = await tcpProbe(target).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProbeError);
    expect((error as ProbeError).code).toBe('PROBE_INVALID_TARGET');
    expect((error as ProbeError).message).toMatch(message);
  });

  it('refuses unknown options', async () => {
    const error = await tcpProbe({ host: '127.0.0.1', port: 1 }, { timeout: 5 } as never).catch(
      (caught: unknown) => caught,
    );
    expect((error as ProbeError).code).toBe('PROBE_INVALID_OPTIONS');
  });
});
