// A mission bus for a new cell, served over WebSocket on 127.0.0.1.
// Run: node --conditions=@pit/source --import tsx examples/bus-server.ts [cells-root] [port]
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { provisionCell } from '@pit/cell-spec';
import { MissionBus, createBusServer, createToken } from '@pit/mission-bus';

const root = process.argv[2] ?? '.pit/missions';
const port = Number(process.argv[3] ?? 7400);

const { dir } = await provisionCell(root, {
  mission: 'Port the parser',
  created_by: 'readme',
  agents: [
    { name: 'forge', role: 'lead' },
    { name: 'smith', role: 'write' },
  ],
});

// Each participant gets a token; the bus keeps only its sha256.
const forge = createToken();
const smith = createToken();
const bus = await MissionBus.open({
  cellDir: dir,
  config: {
    participants: [
      { name: 'forge', role: 'lead', token_sha256: forge.sha256 },
      { name: 'smith', role: 'write', token_sha256: smith.sha256 },
    ],
    log: { fsync: { mode: 'batch', interval_ms: 10 } },
  },
});
const server = await createBusServer({ buses: [bus], port });

// Hand the tokens to the agents: here, a file only this user can read.
const details = join(dir, 'bus-demo.json');
await writeFile(
  details,
  JSON.stringify({
    url: server.url,
    mission: bus.mission.id,
    tokens: { forge: forge.token, smith: smith.token },
  }),
  { mode: 0o600 },
);
console.log(`serving mission ${bus.mission.id} on ${server.url}; connection details in ${details}`);

const shutdown = async (): Promise<void> => {
  await server.close(); // answers requests in flight, closes connections, flushes the log
  await bus.close();
  process.exit(0);
};
process.once('SIGINT', () => void shutdown());
process.once('SIGTERM', () => void shutdown());
