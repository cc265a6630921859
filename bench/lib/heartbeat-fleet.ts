/**
 * The heartbeat driver of bench/detection-at-scale.bench.ts and bench/revive-storm.bench.ts: one
 * process that provisions mission cells and writes the heartbeats of thousands of agents into
 * them, as the agents themselves would (atomically, through @pit/cell-spec's writeHeartbeat).
 * Commands arrive as JSON lines on stdin; each gets one JSON line on stdout:
 * - `{"cmd":"provision","root":DIR,"cells":N,"perCell":M}` → `{"ok":true,"cells":[{uuid,dir,agents}],"ms"}`
 * - `{"cmd":"beat","periodMs":P}` → every agent's heartbeat written now, then every P ms (spread
 *   evenly over the period) → `{"ok":true,"ms"}` once the first round is written
 * - `{"cmd":"kill","victims":[{cell,agent,deadline}],"staleMs":S}` → those agents stop beating,
 *   after one last heartbeat stamped `deadline − S` (so each turns stale exactly at its
 *   deadline) → `{"ok":true,"ms","lastWrittenAt"}`
 * - `{"cmd":"stats"}` → `{"ok":true,"beats","errors","maxLagMs"}`;  `{"cmd":"stop"}` → stops beating;
 *   `{"cmd":"reset"}` → stops beating and forgets every agent (a new fleet may be provisioned).
 */
import { createInterface } from 'node:readline';
import { provisionCell, writeHeartbeat } from '@pit/cell-spec';

interface Agent {
  cell: string;
  dir: string;
  name: string;
  cycle: number;
  dead: boolean;
  writing?: Promise<void>;
}

const agents: Agent[] = [];
const byKey = new Map<string, Agent>();
let beats = 0;
let errors = 0;
let maxLagMs = 0;
let timer: NodeJS.Timeout | undefined;
const reply = (value: object) =>
  process.stdout.write(`${JSON.stringify({ ok: true, ...value })}\n`);

const beat = (agent: Agent, timestampMs = Date.now()): Promise<void> => {
  const previous = agent.writing ?? Promise.resolve();
  const next = previous.then(() =>
    writeHeartbeat(agent.dir, {
      agent: agent.name,
      cell_uuid: agent.cell,
      cycle: ++agent.cycle,
      status: 'working',
      timestamp: timestampMs / 1000,
    }).then(
      () => void (beats += 1),
      () => void (errors += 1),
    ),
  );
  agent.writing = next;
  return next;
};

/** Writes `list` with at most `limit` writes in flight. */
async function writeAll(list: Agent[], limit = 64): Promise<void> {
  let index = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, list.length) }, async () => {
      while (index < list.length) await beat(list[index++]!);
    }),
  );
}

function startBeating(periodMs: number): void {
  const startedAt = Date.now();
  let done = 0; // beats scheduled since startedAt, over all agents
  let inFlight = 0;
  timer = setInterval(() => {
    const due = Math.floor(((Date.now() - startedAt) / periodMs) * agents.length);
    // Bounded in-flight writes: a lagging driver shows up as lag, not as a pile of promises.
    while (done < due && inFlight < 128) {
      const agent = agents[done % agents.length]!;
      const dueAt = startedAt + (done / agents.length) * periodMs;
      maxLagMs = Math.max(maxLagMs, Date.now() - dueAt);
      done += 1;
      if (agent.dead) continue;
      inFlight += 1;
      void beat(agent).finally(() => (inFlight -= 1));
    }
  }, 20);
}

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as { cmd: string } & Record<string, unknown>;
  const started = performance.now();
  switch (command.cmd) {
    case 'provision': {
      const cells = [];
      for (let cell = 0; cell < (command.cells as number); cell += 1) {
        // Names are unique over the fleet (agent-00000 …), as distinct agents' names are.
        const names = Array.from(
          { length: command.perCell as number },
          (_, index) =>
            `agent-${String(cell * (command.perCell as number) + index).padStart(5, '0')}`,
        );
        const { dir, manifest } = await provisionCell(command.root as string, {
          mission: `bench mission ${cell % 10}`,
          created_by: 'bench',
          agents: names.map((name) => ({ name, role: 'write' })),
        });
        for (const name of names) {
          const agent: Agent = { cell: manifest.uuid, dir, name, cycle: 0, dead: false };
          agents.push(agent);
          byKey.set(`${manifest.uuid}/${name}`, agent);
        }
        cells.push({ uuid: manifest.uuid, dir, agents: names });
      }
      reply({ cells, ms: performance.now() - started });
      break;
    }
    case 'beat':
      await writeAll(agents);
      startBeating(command.periodMs as number);
      reply({ ms: performance.now() - started });
      break;
    case 'kill': {
      const victims = (
        command.victims as Array<{ cell: string; agent: string; deadline: number }>
      ).map((victim) => ({ ...victim, agent: byKey.get(`${victim.cell}/${victim.agent}`)! }));
      for (const victim of victims) victim.agent.dead = true;
      // A regular beat still in flight must not land after the last one.
      await Promise.all(victims.map((victim) => victim.agent.writing));
      let index = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (index < victims.length) {
            const victim = victims[index++]!;
            await beat(victim.agent, victim.deadline - (command.staleMs as number));
          }
        }),
      );
      reply({ ms: performance.now() - started, lastWrittenAt: Date.now() });
      break;
    }
    case 'stats':
      reply({ beats, errors, maxLagMs });
      break;
    case 'stop':
      if (timer) clearInterval(timer);
      reply({});
      break;
    case 'reset':
      if (timer) clearInterval(timer);
      timer = undefined;
      await Promise.all(agents.map((agent) => agent.writing));
      agents.length = 0;
      byKey.clear();
      beats = 0;
      errors = 0;
      maxLagMs = 0;
      reply({});
      break;
    default:
      process.stdout.write(
        `${JSON.stringify({ ok: false, error: `unknown command ${command.cmd}` })}\n`,
      );
  }
}
if (timer) clearInterval(timer);
