/**
 * A mission-bus server in its own process, for the crash tests and the README example's
 * shape: `node --conditions=@pit/source --import tsx test/bus-server-process.ts '<json>'`.
 * Prints `READY <port>` once listening; on SIGTERM closes gracefully and exits 0.
 */
import { MissionBus } from '../src/mission-bus.js';
import { createBusServer } from '../src/server.js';
import type { BusConfigInput } from '../src/config.js';

const options = JSON.parse(process.argv[2] ?? '{}') as {
  cellDir: string;
  port?: number;
  config: BusConfigInput;
};
const bus = await MissionBus.open({
  cellDir: options.cellDir,
  config: options.config,
  lockTimeoutMs: 10_000,
});
const server = await createBusServer({ buses: [bus], port: options.port ?? 0, heartbeatMs: 1000 });
process.stdout.write(`READY ${server.port} ${bus.head} ${bus.repairs.length}\n`);
process.once('SIGTERM', () => {
  void (async () => {
    await server.close();
    await bus.close();
    process.exit(0);
  })();
});
