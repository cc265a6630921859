// Interim main job (until `pit demo` lands): provision a demo mission cell under ./.pit/missions,
// run two small agent processes that write heartbeats into it, then discover and validate the cell
// with @pit/cell-spec, print what was found, and stop the agents.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cellPaths, discoverCells, provisionCell, readEvents, readHeartbeat } from '@pit/cell-spec';

const root = `${process.env.INIT_CWD ?? process.cwd()}/.pit/missions`;
const { dir, manifest } = await provisionCell(root, {
  mission: 'Demo: keep two agents alive',
  name: 'demo',
  created_by: process.env.USER ?? 'demo',
  agents: [
    { name: 'forge', role: 'lead' },
    { name: 'allegro', role: 'write' },
  ],
});
console.log(`provisioned cell ${manifest.uuid} at ${dir}`);

const agentSource = `
import { writeHeartbeat } from '@pit/cell-spec';
const [dir, agent, uuid] = process.argv.slice(1);
let cycle = 0;
const beat = () => writeHeartbeat(dir, { agent, cell_uuid: uuid, cycle: cycle++, status: 'working' }).then(() => process.send?.('beat'));
await beat();
setInterval(beat, 200);
`;
const agents = manifest.agents.map((agent) =>
  spawn(process.execPath, ['--conditions=@pit/source', '--import', 'tsx', '--input-type=module', '-e', agentSource, dir, agent.name, manifest.uuid], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  }),
);
// Wait until every agent has written a few heartbeats.
await Promise.all(agents.map(async (child) => { for (let i = 0; i < 3; i++) await once(child, 'message'); }));

const found = await discoverCells(root);
console.log(`\ncells under ${root}: ${found.supervised.length} supervised, ${found.unsupervised.length} other, ${found.problems.length} problem(s)`);
for (const problem of found.problems) console.log(`  problem: ${problem.path}: ${problem.reason}`);
for (const agent of manifest.agents) {
  const heartbeat = await readHeartbeat(dir, agent.name);
  console.log(`  ${agent.name} (${agent.role}): pid ${heartbeat.pid}, cycle ${heartbeat.cycle}, heartbeat ${(Date.now() / 1000 - heartbeat.timestamp).toFixed(2)} s old`);
}
console.log(`\nevents of ${cellPaths(dir).events}:`);
for await (const entry of readEvents(cellPaths(dir).events)) console.log(entry.ok ? `  ${entry.event.ts} ${entry.event.event} ${JSON.stringify(entry.event).slice(0, 80)}` : `  line ${entry.line}: ${entry.reason}`);
for (const child of agents) child.kill('SIGTERM');
await Promise.all(agents.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)));
console.log('\nagents stopped. Validate the cell yourself: node packages/cell-spec/dist/cli.js validate ' + dir);
