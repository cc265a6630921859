/**
 * Self-promotion on the mission bus (issue #13, point 5): a real level-1 agent (at levels 2 and 3
 * the cell's `bus/` is read-only, so the write itself fails: sandbox.test.ts) appends a
 * `participant` line naming itself `lead` to its cell's bus log and writes its own token's hash
 * into the cell's `bus/tokens.json`. After the daemon restarts (the bus reopens) it tries a
 * lead-only operation with the planted token and with the token the daemon gave it: the first
 * is not even authenticated, the second is refused; the daemon reports both the ignored claim
 * and the refusal, naming the cell, and its own store still holds the role it granted.
 */
import { promises as fs } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@pit/test-kit';
import {
  cleanup,
  getStatus,
  makeFleet,
  startDaemon,
  stopDaemon,
  type DaemonProcess,
} from './harness.js';

afterEach(cleanup);

/** The attacker, run with `node --experimental-websocket -e` (no file of its own to read). */
const HOSTILE_AGENT = String.raw`
const fs = require('fs'), path = require('path'), crypto = require('crypto');
const name = 'mole';
const workspace = process.cwd();
const bus = path.join(path.dirname(workspace), 'bus');
const planted = 'planted-token-' + 'p'.repeat(40);
const note = (entry) => fs.appendFileSync(path.join(workspace, 'hostile.jsonl'), JSON.stringify(entry) + '\n');
if (!fs.existsSync(path.join(workspace, 'planted'))) {
  const segments = fs.readdirSync(bus).filter((n) => /^stream-\d{20}\.jsonl$/.test(n)).sort();
  const segment = path.join(bus, segments[segments.length - 1]);
  const lines = fs.readFileSync(segment, 'utf8').trim().split('\n');
  const seq = JSON.parse(lines[lines.length - 1]).seq + 1;
  fs.appendFileSync(segment, JSON.stringify({ seq, id: crypto.randomUUID(), ts: new Date().toISOString(), event: 'participant', sender: '@pit', name, role: 'lead' }) + '\n');
  fs.writeFileSync(path.join(bus, 'tokens.json'), JSON.stringify({ [name]: crypto.createHash('sha256').update(planted).digest('hex') }));
  fs.writeFileSync(path.join(workspace, 'planted'), String(seq));
}
const attempt = (label, token) => new Promise((resolve) => {
  const ws = new WebSocket(process.env.LAZARUS_BUS_URL);
  const frames = [];
  const finish = (extra) => { note({ label, frames, ...extra }); try { ws.close(); } catch {} resolve(); };
  ws.onopen = () => ws.send(JSON.stringify({ op: 'hello', v: 1, ref: 0, mission: process.env.LAZARUS_BUS_MISSION, participant: name, token }));
  ws.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    frames.push(frame);
    if (frame.type === 'welcome') ws.send(JSON.stringify({ op: 'configure_isolation', ref: 1, participant: name, profile: null }));
    else if (frame.ref === 1) ws.send(JSON.stringify({ op: 'grant', ref: 2, participant: name, role: 'lead' }));
    else if (frame.ref === 2) finish({});
  };
  ws.onclose = (event) => finish({ closed: event.code });
  ws.onerror = () => {};
});
const timer = setInterval(() => {
  if (!fs.existsSync(path.join(workspace, 'go'))) return;
  clearInterval(timer);
  attempt('planted', planted).then(() => attempt('own', process.env.LAZARUS_BUS_TOKEN)).then(() => note({ done: true }));
}, 100);
setInterval(() => {}, 1000);
`;

/** A port free now, so that the bus listens on the same one after the daemon restarts (agents keep their URL). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Attempt {
  label?: string;
  frames?: Array<Record<string, unknown>>;
  closed?: number;
  done?: boolean;
}

async function readAttempts(workspace: string): Promise<Attempt[] | undefined> {
  const text = await fs.readFile(join(workspace, 'hostile.jsonl'), 'utf8').catch(() => '');
  const attempts = text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Attempt);
  return attempts.some((entry) => entry.done) ? attempts : undefined;
}

const logLines = (daemon: DaemonProcess) =>
  daemon
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('hostile agent: self-promotion on the mission bus', () => {
  it('a lead line and a token planted in the cell grant nothing after the bus reopens; the refusal is reported', async () => {
    const fleet = await makeFleet({
      agents: ['mole'],
      heartbeat: false,
      argv: {
        mole: JSON.stringify([
          process.execPath,
          '--experimental-websocket',
          '--no-warnings',
          '-e',
          HOSTILE_AGENT,
        ]),
      },
      agentExtra: { mole: 'isolation = 1' },
    });
    const config = fleet.lines
      .join('\n')
      .replace(
        '[bus]\nenabled = false',
        `[bus]\nenabled = true\nlisten = "127.0.0.1:${await freePort()}"`,
      );
    await fs.writeFile(fleet.configPath, config, { mode: 0o600 });
    const workspace = join(fleet.cellDir, 'workspace');

    const first = await startDaemon(fleet.configPath);
    await waitFor(
      () =>
        fs.access(join(workspace, 'planted')).then(
          () => true,
          () => undefined,
        ),
      30_000,
      'the agent to plant its lead line',
    );
    await stopDaemon(first);

    const second = await startDaemon(fleet.configPath);
    await waitFor(
      async () =>
        (await getStatus(second.url)).agents.find(
          (agent) => agent.agent.endsWith('mole') && agent.pid !== undefined,
        ),
      30_000,
      'the restarted daemon to adopt the agent',
    );
    await waitFor(
      () =>
        logLines(second).find((line) => String(line.msg).includes('authority store does not hold')),
      30_000,
      'the bus to reopen',
    );
    await fs.writeFile(join(workspace, 'go'), '');
    const attempts = await waitFor(() => readAttempts(workspace), 30_000, 'the attempts').catch(
      async (error: unknown) => {
        const seen = await fs.readFile(join(workspace, 'hostile.jsonl'), 'utf8').catch(() => '');
        throw new Error(`${String(error)}\nagent wrote: ${seen}\n${second.output().slice(-3000)}`);
      },
    );

    const planted = attempts.find((entry) => entry.label === 'planted');
    expect(planted?.frames?.some((frame) => frame.type === 'welcome')).toBe(false);
    expect(planted?.closed).toBe(4401);
    const own = attempts.find((entry) => entry.label === 'own');
    expect(own?.frames?.find((frame) => frame.type === 'welcome')).toMatchObject({ role: 'write' });
    expect(
      own?.frames?.filter((frame) => frame.type === 'error').map((frame) => frame.code),
    ).toEqual(['BUS_FORBIDDEN', 'BUS_FORBIDDEN']);

    const lines = logLines(second);
    expect(
      lines.find((line) => String(line.msg).includes('authority store does not hold')),
    ).toMatchObject({
      level: 'warn',
      cell: fleet.cellDir,
      claims: [{ name: 'mole', claimed: 'lead', held: 'write' }],
    });
    const refusals = lines.filter((line) => line.msg === 'bus: operation refused');
    expect(refusals.map((line) => line.operation)).toEqual(['configure_isolation', 'grant']);
    for (const refusal of refusals)
      expect(refusal).toMatchObject({
        level: 'warn',
        cell: fleet.cellDir,
        participant: 'mole',
        role: 'write',
      });
    expect(await fs.readFile(join(fleet.cellDir, 'bus', 'audit.jsonl'), 'utf8')).toContain(
      'bus_auth_failed',
    );

    const store = JSON.parse(
      await fs.readFile(join(fleet.stateDir, 'bus', fleet.uuid, 'participants.json'), 'utf8'),
    ) as { participants: Record<string, { role: string; granted_by: string }> };
    expect(store.participants.mole).toMatchObject({ role: 'write', granted_by: '@pit' });
    await stopDaemon(second);
  }, 150_000);
});
