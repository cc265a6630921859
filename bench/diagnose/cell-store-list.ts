/**
 * Diagnosis, not a benchmark: what one `list()` of the cluster's cell object store (`pit_cells`,
 * what apps/daemon/src/cluster/cell-store.ts `listCellRecords` reads) costs with real nats-server (a
 * 3-node JetStream cluster on 127.0.0.1, replicas 3) at each of COUNTS cell records: wall time
 * (p50, p95, max over ROUNDS listings), this process's CPU and the three nodes' CPU per listing.
 * Usage: node --conditions=@pit/source --import tsx bench/diagnose/cell-store-list.ts [COUNTS] [ROUNDS]
 * (COUNTS comma-separated and rising, default 100,1000: records are added up to each; ROUNDS
 * default 20.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCoordination } from '@pit/daemon/cluster';
import { startNatsCluster } from '@pit/test-kit';
import { cpuMs } from '../lib/proc.js';

const COUNTS = (process.argv[2] ?? '100,1000').split(',').map(Number);
const ROUNDS = Number(process.argv[3] ?? 20);
const say = (line: string) => process.stderr.write(`[cell-store-list] ${line}\n`);
const uuidOf = (index: number) => `0a1b2c3d-4e5f-4a6b-8c7d-${index.toString(16).padStart(12, '0')}`;

const base = mkdtempSync(join(tmpdir(), 'pit-cell-list-'));
const cluster = await startNatsCluster(base);
// The daemon's own handle: the same buckets, the same store, the same client options.
const coordination = await openCoordination({
  servers: cluster.urls,
  hostId: 'bench-list',
  leaseTtlMs: 15_000,
  requestTimeoutMs: 10_000,
});
try {
  const store = coordination.cellStore;
  const rows: string[] = [];
  let stored = 0;
  for (const count of COUNTS) {
    for (; stored < count; stored += 1) {
      const uuid = uuidOf(stored);
      // A definition-sized record (what putCellDefinition writes) with a 1 KiB archive.
      const record = {
        version: 1,
        uuid,
        host: `host-${stored % 3}`,
        written_at: new Date().toISOString(),
        cell: {
          name: `cell ${stored}`,
          mission: 'a mission statement of ordinary length for a measured cell record',
          created_at: '2026-12-04T00:00:00.000Z',
          created_by: 'bench',
        },
        agents: [
          { name: 'forge', role: 'lead' },
          { name: 'scout', role: 'research' },
          { name: 'smith', role: 'build' },
        ],
      };
      await store.putBlob(
        { name: uuid, metadata: { pit_cell: JSON.stringify(record) } },
        new Uint8Array(1024),
      );
    }
    const wall: number[] = [];
    const cpu: number[] = [];
    const serverCpu = () =>
      cluster.nodes.reduce((sum, node) => sum + (cpuMs(node.process?.pid ?? 0) ?? 0), 0);
    const serversBefore = serverCpu();
    for (let round = 0; round < ROUNDS; round += 1) {
      const cpuBefore = process.cpuUsage();
      const started = performance.now();
      const listed = (await store.list()).filter((info) => !info.deleted);
      // What listCellRecords does with each: parse its metadata.
      for (const info of listed) JSON.parse(info.metadata?.pit_cell ?? 'null');
      wall.push(performance.now() - started);
      const used = process.cpuUsage(cpuBefore);
      cpu.push((used.user + used.system) / 1000);
      if (listed.length !== count) throw new Error(`listed ${listed.length}, expected ${count}`);
    }
    const sorted = [...wall].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    const cpuMean = cpu.reduce((a, b) => a + b, 0) / cpu.length;
    const serversMean = (serverCpu() - serversBefore) / ROUNDS;
    const row = `${count} records: list p50 ${at(0.5).toFixed(1)} ms, p95 ${at(0.95).toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms; client CPU ${cpuMean.toFixed(1)} ms and nats-server CPU (3 nodes) ${serversMean.toFixed(0)} ms per list (${ROUNDS} lists; load ${loadavg()
      .map((value) => value.toFixed(2))
      .join(' ')})`;
    say(row);
    rows.push(row);
  }
  process.stdout.write(`${rows.join('\n')}\n`);
} finally {
  await coordination.close();
  await cluster.stop();
  rmSync(base, { recursive: true, force: true });
}
