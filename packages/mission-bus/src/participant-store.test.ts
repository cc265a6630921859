import { appendFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeCell, tempRoot } from '../test/helpers.js';
import { SYSTEM_SENDER } from './bus-event.js';
import { connectBus, type BusClient } from './client.js';
import { MissionBus } from './mission-bus.js';
import { createDirectoryParticipantStore, type ParticipantStore } from './participant-store.js';
import { createBusServer, type BusServer } from './server.js';
import { createToken } from './tokens.js';

const MISSION = { id: 'mission-authority', title: 'Authority tests' };

let cleanup: () => Promise<void>;
let root: string;
let cellDir: string;
let store: ParticipantStore;
const open: MissionBus[] = [];
const servers: BusServer[] = [];
const clients: BusClient[] = [];

async function openBus(): Promise<MissionBus> {
  const bus = await MissionBus.open({ cellDir, config: { mission: MISSION }, authority: store });
  open.push(bus);
  return bus;
}

async function closeAll(): Promise<void> {
  for (const client of clients.splice(0)) await client.close();
  for (const server of servers.splice(0)) await server.close();
  for (const bus of open.splice(0)) await bus.close();
}

async function serve(bus: MissionBus): Promise<string> {
  const server = await createBusServer({ buses: [bus] });
  servers.push(server);
  return server.url;
}

async function connect(url: string, participant: string, token: string): Promise<BusClient> {
  const client = await connectBus({ url, mission: MISSION.id, participant, token });
  clients.push(client);
  return client;
}

/** What an agent with write access to the cell does: appends a line to the log's last segment. */
async function plantLogLine(line: Record<string, unknown>): Promise<void> {
  const segments = (await readdir(join(cellDir, 'bus')))
    .filter((name) => /^stream-\d{20}\.jsonl$/.test(name))
    .sort();
  await appendFile(join(cellDir, 'bus', segments.at(-1) as string), `${JSON.stringify(line)}\n`);
}

beforeEach(async () => {
  ({ root, cleanup } = await tempRoot());
  cellDir = await makeCell(root, ['boss', 'mole']);
  store = createDirectoryParticipantStore(join(root, 'state', 'bus', 'cell'));
});

afterEach(async () => {
  await closeAll();
  await cleanup();
});

describe('a bus opened with an authority store', () => {
  it('grants nothing for a lead line and a token planted in the cell', async () => {
    const bus = await openBus();
    const mole = createToken();
    await bus.registerParticipant({ name: 'mole', role: 'write', token_sha256: mole.sha256 });
    await bus.publish('mole', { topic: 'work', payload: 1 });
    await bus.close();

    // The attack: a participant line naming the mole lead, and an intruder's token in bus/tokens.json.
    const intruder = createToken();
    await plantLogLine({
      seq: 3,
      id: '00000000-0000-4000-8000-000000000001',
      ts: new Date().toISOString(),
      event: 'participant',
      sender: SYSTEM_SENDER,
      name: 'mole',
      role: 'lead',
    });
    await writeFile(
      join(cellDir, 'bus', 'tokens.json'),
      JSON.stringify({ mole: intruder.sha256, intruder: intruder.sha256 }),
    );

    const reopened = await openBus();
    expect(reopened.roleOf('mole')).toBe('write');
    expect(reopened.can('mole', 'configure_isolation')).toBe(false);
    expect(reopened.ignoredClaims).toEqual([{ name: 'mole', claimed: 'lead', held: 'write' }]);
    expect(reopened.authenticate('mole', intruder.token)).toBe(false);
    expect(reopened.authenticate('intruder', intruder.token)).toBe(false);
    expect(reopened.authenticate('mole', mole.token)).toBe(true);

    const url = await serve(reopened);
    const client = await connect(url, 'mole', mole.token);
    expect(client.role).toBe('write');
    await expect(
      client.configureIsolation({ participant: 'mole', profile: { level: 1 } }),
    ).rejects.toMatchObject({ code: 'BUS_FORBIDDEN' });
    await expect(client.grant('mole', 'lead')).rejects.toMatchObject({ code: 'BUS_FORBIDDEN' });
    const audit = await reopened.readAudit();
    expect(audit.map((entry) => entry.event)).toEqual([
      'bus_claim_ignored',
      'bus_denied',
      'bus_denied',
    ]);
  });

  it('keeps what a lead granted over the wire across a reopen, in the store and not the cell', async () => {
    const bus = await openBus();
    const boss = createToken();
    const mole = createToken();
    await bus.registerParticipant({ name: 'boss', role: 'lead', token_sha256: boss.sha256 });
    await bus.registerParticipant({ name: 'mole', role: 'read', token_sha256: mole.sha256 });
    const url = await serve(bus);
    const lead = await connect(url, 'boss', boss.token);
    expect(await lead.grant('mole', 'write')).toEqual({ seq: expect.any(Number) });
    expect(await lead.grant('mole', 'write')).toEqual({ seq: null });
    await closeAll();

    const stored = await store.load();
    expect(stored?.participants.mole).toEqual({
      role: 'write',
      token_sha256: mole.sha256,
      granted_by: 'boss',
    });
    expect((await stat(store.location)).mode & 0o777).toBe(0o600);
    await expect(readFile(join(cellDir, 'bus', 'tokens.json'))).rejects.toMatchObject({
      code: 'ENOENT',
    });

    const reopened = await openBus();
    expect(reopened.roleOf('mole')).toBe('write');
    expect(reopened.ignoredClaims).toEqual([]);
    const client = await connect(await serve(reopened), 'mole', mole.token);
    expect(client.role).toBe('write');
    await expect(client.publish({ topic: 'granted', payload: true })).resolves.toMatchObject({
      seq: expect.any(Number),
    });
  });

  it('takes no role from the log of a cell it opens for the first time (a migrated cell)', async () => {
    const before = await MissionBus.open({ cellDir, config: { mission: MISSION } });
    await before.registerParticipant({ name: 'boss', role: 'lead' });
    await before.close();

    const bus = await openBus();
    expect(bus.roleOf('boss')).toBeUndefined();
    expect(bus.ignoredClaims).toEqual([{ name: 'boss', claimed: 'lead', held: null }]);
    await bus.registerParticipant({ name: 'boss', role: 'lead' });
    expect(bus.roleOf('boss')).toBe('lead');
  });
});
