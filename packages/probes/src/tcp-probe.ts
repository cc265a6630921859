import { connect } from 'node:net';
import { z } from 'zod';
import {
  classifySocketError,
  describeError,
  parseTarget,
  runProbe,
  type ProbeOptions,
  type ProbeResult,
} from './probe-result.js';

/** Where {@link tcpProbe} connects. */
export interface TcpTarget {
  /** Host name or IP address. */
  host: string;
  /** TCP port, 1–65535. */
  port: number;
}

const TcpTargetSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65_535),
});

/** The result of {@link tcpProbe}. */
export interface TcpProbeResult extends ProbeResult {
  kind: 'tcp';
}

/**
 * Checks that a TCP connection to `host:port` can be opened, then closes it.
 * A refused, unreachable or silent port is a result with `ok: false`.
 * @throws {ProbeError} PROBE_INVALID_TARGET for a bad host or port; PROBE_INVALID_OPTIONS.
 * @example
 * const result = await tcpProbe({ host: '127.0.0.1', port: 8642 }, { timeoutMs: 1000 });
 * if (!result.ok) console.log(result.failure, result.detail);
 */
export async function tcpProbe(target: TcpTarget, options?: ProbeOptions): Promise<TcpProbeResult> {
  const { host, port } = parseTarget('tcp', TcpTargetSchema, target);
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return runProbe<TcpProbeResult>(
    { kind: 'tcp', describe: `connect ${address}` },
    options,
    (attempt) => {
      const socket = connect({ host, port });
      attempt.onSettled(() => socket.destroy());
      socket.once('connect', () => {
        attempt.settle({ ok: true, detail: `connected to ${address}` });
        socket.end();
        socket.destroy();
      });
      socket.on('error', (error) => {
        attempt.settle({
          ok: false,
          failure: classifySocketError(error),
          detail: `connect ${address}: ${describeError(error)}`,
        });
      });
    },
  );
}
