#!/usr/bin/env node
// The demo's agent: a small real program of the kind the Pit supervises. It writes its heartbeat
// into its cell (atomically, via @pit/cell-spec) every 500 ms, serves GET /health via
// @pit/probes' embeddable health server, and — with --config FILE — reads a JSON config at start
// and exits 78 (EX_CONFIG: "bad config") when it does not parse, the way a real agent dies after
// corrupting its own config.
// Usage (the daemon sets LAZARUS_AGENT and LAZARUS_CELL_UUID): agent.js --port N [--config FILE]
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeHeartbeat } from '@pit/cell-spec';
import { createHealthServer } from '@pit/probes';

const args = process.argv.slice(2);
const option = (name: string) => {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
};
const agent = process.env.LAZARUS_AGENT ?? 'demo';
const cellUuid = process.env.LAZARUS_CELL_UUID;
if (!cellUuid) {
  process.stderr.write('demo agent: LAZARUS_CELL_UUID is not set (run me from the Pit)\n');
  process.exit(64);
}
const configPath = option('--config');
let model = 'none';
if (configPath) {
  try {
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as { model?: string };
    model = config.model ?? 'default';
    process.stdout.write(`${agent}: config ok (model ${model})\n`);
  } catch (error) {
    process.stderr.write(`${agent}: bad config ${configPath}: ${(error as Error).message}\n`);
    process.exit(78);
  }
}
const cellDir = dirname(process.cwd()); // the daemon runs an agent in its cell's workspace/
let cycle = 0;
const beat = () =>
  writeHeartbeat(cellDir, {
    agent,
    cell_uuid: cellUuid,
    cycle: cycle++,
    status: 'working',
    model,
  }).catch((error: Error) =>
    process.stderr.write(`${agent}: heartbeat failed: ${error.message}\n`),
  );
// Listen first, then beat: an agent announces itself alive only once it can answer /health.
const health = createHealthServer({ service: agent, port: Number(option('--port') ?? 0) });
const address = await health.listen();
await beat();
const timer = setInterval(() => void beat(), 500);
process.stdout.write(`${agent}: pid ${process.pid}, health on ${address.host}:${address.port}\n`);
process.on('SIGTERM', () => {
  clearInterval(timer);
  void health.close().finally(() => process.exit(0));
});
