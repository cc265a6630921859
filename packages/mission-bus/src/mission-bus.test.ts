import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PitError } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeCell, roleParticipants, tempRoot } from '../test/helpers.js';
import { SYSTEM_SENDER, type BusEvent } from './bus-event.js';
import type { BusConfigInput } from './config.js';
import { BusError } from './errors.js';
import { inboxFileName } from './inbox.js';
import { MissionBus } from './mission-bus.js';
import { CAPABILITIES, DEFAULT_ROLE_CAPABILITIES, ROLES, type Capability } from './roles.js';
import { hashToken } from './tokens.js';

const MISSION = { id: 'mission-7', title: 'Port the parser' };
const WORKSPACE = { ts: '2026-11-22T17-43-00Z', sha256: 'ab'.repeat(32) };

let cleanup: () => Promise<void>;
let root: string;
let cellDir: string;
const open: MissionBus[] = [];

async function openBus(config: BusConfigInput = {}, dir = cellDir): Promise<MissionBus> {
  const bus = await MissionBus.open({
    cellDir: dir,
    config: { mission: MISSION, participants: roleParticipants().participants, ...config },
  });
  open.push(bus);
  return bus;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(PitError.is(error)).toBe(true);
    return (error as BusError).code;
  }
  return 'OK';
}

function segmentsOf(dir: string): Promise<string[]> {
  return readdir(join(dir, 'bus')).then((names) =>
    names.filter((name) => /^stream-\d{20}\.jsonl$/.test(name)).sort(),
  );
}

beforeEach(async () => {
  ({ root, cleanup } = await tempRoot());
  cellDir = await makeCell(root);
});

afterEach(async () => {
  for (const bus of open.splice(0)) await bus.close();
  await cleanup();
});

describe('MissionBus', () => {
  it('orders message → checkpoint → handoff as 1, 2, 3 with id, timestamp and sender', async () => {
    const bus = await openBus();
    const message = await bus.publish('lead1', {
      topic: 'plan',
      payload: { steps: ['lex', 'parse'] },
    });
    const checkpoint = await bus.checkpoint('writer', {
      summary: 'lexer done',
      state: { next: 'parse' },
      artifacts: ['src/lex.ts'],
      workspace: WORKSPACE,
    });
    const handoff = await bus.handoff('writer', {
      to: 'lead1',
      checkpoint: checkpoint.id,
      note: 'parser is yours',
    });
    expect([message.seq, checkpoint.seq, handoff.seq]).toEqual([1, 2, 3]);
    for (const event of [message, checkpoint, handoff]) {
      expect(event.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Date.parse(event.ts)).not.toBeNaN();
    }
    expect(message).toMatchObject({
      event: 'message',
      sender: 'lead1',
      topic: 'plan',
      payload: { steps: ['lex', 'parse'] },
    });
    expect(handoff).toMatchObject({
      event: 'handoff',
      sender: 'writer',
      from: 'writer',
      to: 'lead1',
      checkpoint: checkpoint.id,
      note: 'parser is yours',
    });
    expect(bus.head).toBe(3);
    expect(await bus.read()).toEqual([message, checkpoint, handoff]);
  });

  it('builds a resume packet with everything the recipient needs', async () => {
    const bus = await openBus({ isolation: { writer: { level: 2, network: 'none' } } });
    await bus.publish('lead1', { topic: 'plan', payload: 1 });
    const checkpoint = await bus.checkpoint('writer', {
      summary: 'lexer done',
      state: { next: 'parse' },
      artifacts: ['src/lex.ts'],
      workspace: WORKSPACE,
    });
    await bus.publish('writer', { topic: 'note', payload: 'after the checkpoint' });
    const handoff = await bus.handoff('writer', {
      to: 'lead1',
      checkpoint: checkpoint.id,
      note: 'parser is yours',
    });
    const packet = await bus.buildResumePacket(handoff.id);
    expect(packet).toEqual({
      mission: MISSION,
      handoff,
      recipient: 'lead1',
      sender: 'writer',
      from: 'writer',
      note: 'parser is yours',
      checkpoint,
      workspace: WORKSPACE,
      participants: expect.arrayContaining([
        { name: 'lead1', role: 'lead', capabilities: [...CAPABILITIES] },
        {
          name: 'writer',
          role: 'write',
          capabilities: ['publish', 'checkpoint', 'handoff', 'read'],
        },
        { name: 'reader', role: 'read', capabilities: ['read'] },
        { name: 'auditor', role: 'audit', capabilities: ['read', 'audit'] },
      ]),
      roles: Object.fromEntries(ROLES.map((role) => [role, [...DEFAULT_ROLE_CAPABILITIES[role]]])),
      isolation: { writer: { level: 2, network: 'none' } },
      stream: { length: 4, resume_after: 2 },
    });
    await expect(bus.buildResumePacket('no-such-handoff')).rejects.toMatchObject({
      code: 'BUS_NOT_FOUND',
    });
  });

  it('lets the owner (@pit) hand a dead agent’s work to a substitute, with a workspace checkpoint reference', async () => {
    const bus = await openBus();
    const checkpoint = await bus.checkpoint('writer', { summary: 'half way' });
    await bus.registerParticipant({
      name: 'substitute',
      role: 'write',
      token_sha256: hashToken('t'),
    });
    expect(await bus.lastCheckpointOf('writer')).toEqual(checkpoint);
    expect(await bus.lastCheckpointOf('lead1')).toBeUndefined();
    const handoff = await bus.handoff(SYSTEM_SENDER, {
      from: 'writer',
      to: 'substitute',
      checkpoint: checkpoint.id,
      note: 'writer died',
      workspace: WORKSPACE,
    });
    expect(handoff).toMatchObject({
      sender: '@pit',
      from: 'writer',
      to: 'substitute',
      workspace: WORKSPACE,
    });
    const packet = await bus.buildResumePacket(handoff.id);
    expect(packet.workspace).toEqual(WORKSPACE);
    expect(packet.sender).toBe('@pit');
    expect(bus.authenticate('substitute', 't')).toBe(true);
    await expect(
      bus.handoff(SYSTEM_SENDER, { to: 'substitute', checkpoint: checkpoint.id }),
    ).rejects.toMatchObject({ code: 'BUS_INVALID' });
  });

  it('validates handoffs: a participant recipient, an existing checkpoint, only one’s own work', async () => {
    const bus = await openBus();
    const checkpoint = await bus.checkpoint('writer', { summary: 's' });
    expect(await codeOf(bus.handoff('writer', { to: 'stranger', checkpoint: checkpoint.id }))).toBe(
      'BUS_UNKNOWN_PARTICIPANT',
    );
    expect(
      await codeOf(bus.handoff('writer', { to: 'lead1', checkpoint: 'missing-checkpoint' })),
    ).toBe('BUS_NOT_FOUND');
    expect(
      await codeOf(
        bus.handoff('writer', { from: 'lead1', to: 'reader', checkpoint: checkpoint.id }),
      ),
    ).toBe('BUS_FORBIDDEN');
    expect(await codeOf(bus.handoff('writer', { to: 'writer', checkpoint: checkpoint.id }))).toBe(
      'BUS_INVALID',
    );
    expect(await codeOf(bus.handoff('writer', { to: 'lead1', checkpoint: 'a/b' }))).toBe(
      'BUS_INVALID',
    );
    expect(bus.head).toBe(1);
  });

  describe('permission matrix (in-process)', () => {
    const operations: Array<{
      capability: Capability;
      run: (bus: MissionBus, who: string, checkpointId: string) => Promise<unknown>;
    }> = [
      { capability: 'publish', run: (bus, who) => bus.publish(who, { topic: 't', payload: null }) },
      { capability: 'checkpoint', run: (bus, who) => bus.checkpoint(who, { summary: 's' }) },
      {
        capability: 'handoff',
        run: (bus, who, checkpointId) =>
          bus.handoff(who, {
            to: who === 'reader' ? 'writer' : 'reader',
            checkpoint: checkpointId,
          }),
      },
      {
        capability: 'configure_isolation',
        run: (bus, who) =>
          bus.configureIsolation(who, { participant: 'writer', profile: { level: 1 } }),
      },
      { capability: 'read', run: async (bus, who) => bus.authorize(who, 'read', 'subscribe') },
      { capability: 'audit', run: async (bus, who) => bus.authorize(who, 'audit', 'audit') },
    ];
    const cases = ['lead1', 'writer', 'reader', 'auditor', 'stranger'].flatMap((who) =>
      operations.map((operation) => ({ who, ...operation })),
    );
    const roleOf: Record<string, keyof typeof DEFAULT_ROLE_CAPABILITIES | undefined> = {
      lead1: 'lead',
      writer: 'write',
      reader: 'read',
      auditor: 'audit',
      stranger: undefined,
    };

    it.each(cases)('$who × $capability', async ({ who, capability, run }) => {
      const bus = await openBus();
      const checkpoint = await bus.checkpoint(SYSTEM_SENDER, { summary: 'seed' });
      const role = roleOf[who];
      const allowed = role !== undefined && DEFAULT_ROLE_CAPABILITIES[role].includes(capability);
      expect(bus.can(who, capability)).toBe(allowed);
      expect(await codeOf(run(bus, who, checkpoint.id))).toBe(allowed ? 'OK' : 'BUS_FORBIDDEN');
    });

    it('applies role overrides from the config and records refusals in the audit trail', async () => {
      const bus = await openBus({ roles: { read: ['read', 'publish'], write: ['read'] } });
      expect(await codeOf(bus.publish('reader', { topic: 't', payload: 1 }))).toBe('OK');
      expect(await codeOf(bus.publish('writer', { topic: 't', payload: 1 }))).toBe('BUS_FORBIDDEN');
      expect(bus.roles().lead).toEqual([...CAPABILITIES]);
      const audit = await bus.readAudit();
      expect(audit).toEqual([
        expect.objectContaining({
          event: 'bus_denied',
          participant: 'writer',
          operation: 'publish',
          capability: 'publish',
          role: 'write',
        }),
      ]);
    });

    it('refuses everything to a removed participant', async () => {
      const bus = await openBus();
      expect(await bus.removeParticipant('writer')).toMatchObject({
        event: 'participant',
        name: 'writer',
        role: null,
        sender: '@pit',
      });
      for (const capability of CAPABILITIES) expect(bus.can('writer', capability)).toBe(false);
      expect(await codeOf(bus.publish('writer', { topic: 't', payload: 1 }))).toBe('BUS_FORBIDDEN');
      expect(await bus.removeParticipant('writer')).toBeNull();
    });
  });

  it('writes direct messages and handoffs to the recipient’s inbox, one file per event, atomically', async () => {
    const bus = await openBus();
    const direct = await bus.publish('lead1', {
      topic: 'dm',
      payload: { hello: 'reader' },
      to: 'reader',
    });
    await bus.publish('lead1', { topic: 'broadcast', payload: 1 });
    const checkpoint = await bus.checkpoint('writer', { summary: 's' });
    const handoff = await bus.handoff('writer', { to: 'reader', checkpoint: checkpoint.id });
    const inbox = join(cellDir, 'bus', 'inbox', 'reader');
    expect((await readdir(inbox)).sort()).toEqual([inboxFileName(direct), inboxFileName(handoff)]);
    expect(JSON.parse(await readFile(join(inbox, inboxFileName(direct)), 'utf8'))).toEqual(direct);
    expect(JSON.parse(await readFile(join(inbox, inboxFileName(handoff)), 'utf8'))).toEqual(
      handoff,
    );
    expect(await codeOf(bus.publish('lead1', { topic: 'dm', payload: 1, to: 'nobody' }))).toBe(
      'BUS_UNKNOWN_PARTICIPANT',
    );
  });

  it('writes a direct event a crash kept from the inbox when it reopens', async () => {
    const bus = await openBus();
    const direct = await bus.publish('lead1', { topic: 'dm', payload: 1, to: 'reader' });
    await bus.close();
    open.pop();
    const inbox = join(cellDir, 'bus', 'inbox', 'reader');
    await writeFile(join(cellDir, 'bus', 'inbox-delivered.json'), '{"seq":0}');
    const { rm } = await import('node:fs/promises');
    await rm(join(inbox, inboxFileName(direct)));
    await openBus();
    expect(JSON.parse(await readFile(join(inbox, inboxFileName(direct)), 'utf8'))).toEqual(direct);
  });

  it('returns the first event when an id is published again, and refuses an id reused for another event', async () => {
    const bus = await openBus();
    const [first, again] = await Promise.all([
      bus.publish('writer', { id: 'op-1', topic: 't', payload: 1 }),
      bus.publish('writer', { id: 'op-1', topic: 't', payload: 1 }),
    ]);
    expect(again).toEqual(first);
    expect(await bus.publish('writer', { id: 'op-1', topic: 't', payload: 1 })).toEqual(first);
    expect(await codeOf(bus.checkpoint('writer', { id: 'op-1', summary: 's' }))).toBe(
      'BUS_CONFLICT',
    );
    expect(await codeOf(bus.publish('lead1', { id: 'op-1', topic: 't', payload: 1 }))).toBe(
      'BUS_CONFLICT',
    );
    expect(bus.head).toBe(1);
  });

  it('refuses a write carrying an epoch older than the participant’s current one (an incarnation that was replaced), and audits it', async () => {
    const current = new Map<string, number | null>([['writer', 3]]);
    const bus = await MissionBus.open({
      cellDir,
      config: { mission: MISSION, participants: roleParticipants().participants },
      currentEpoch: (participant) => current.get(participant),
    });
    open.push(bus);
    const stale = bus.publish('writer', { topic: 't', payload: 1, epoch: 2 });
    await expect(stale).rejects.toMatchObject({
      code: 'BUS_STALE_EPOCH',
      message: expect.stringMatching(/writer wrote with epoch 2, older than its current epoch 3/),
    });
    expect(await codeOf(bus.checkpoint('writer', { summary: 's', epoch: 1 }))).toBe(
      'BUS_STALE_EPOCH',
    );
    expect(bus.head).toBe(0);
    // The current epoch, a newer one, no epoch, and a participant with no known epoch all pass.
    await bus.publish('writer', { topic: 't', payload: 2, epoch: 3 });
    await bus.publish('writer', { topic: 't', payload: 3, epoch: 4 });
    await bus.publish('writer', { topic: 't', payload: 4 });
    await bus.publish('lead1', { topic: 't', payload: 5, epoch: 1 });
    expect(bus.head).toBe(4);
    // No incarnation current here (taken over by another host): any epoch is refused.
    current.set('writer', null);
    expect(await codeOf(bus.publish('writer', { topic: 't', payload: 6, epoch: 4 }))).toBe(
      'BUS_STALE_EPOCH',
    );
    await bus.publish('writer', { topic: 't', payload: 7 });
    expect(bus.head).toBe(5);
    // Each event says which incarnation wrote it, in the log and after a reopen.
    const written = (await bus.read()).map((event) => [event.sender, event.epoch]);
    expect(written).toEqual([
      ['writer', 3],
      ['writer', 4],
      ['writer', undefined],
      ['lead1', 1],
      ['writer', undefined],
    ]);
    const audit = await bus.readAudit();
    expect(audit.filter((entry) => entry.event === 'bus_denied')).toHaveLength(3);
  });

  it('refuses an event over log.max_event_bytes without using a sequence number', async () => {
    const bus = await openBus({ log: { max_event_bytes: 2048 } });
    expect(await codeOf(bus.publish('writer', { topic: 't', payload: 'x'.repeat(4096) }))).toBe(
      'BUS_TOO_LARGE',
    );
    expect((await bus.publish('writer', { topic: 't', payload: 'small' })).seq).toBe(1);
  });

  it('refuses malformed input naming the field', async () => {
    const bus = await openBus();
    await expect(bus.publish('writer', { topic: '', payload: 1 })).rejects.toThrow(
      /publish: topic:/,
    );
    await expect(
      bus.publish('writer', { topic: 't', payload: 1, extra: true } as never),
    ).rejects.toMatchObject({ code: 'BUS_INVALID' });
  });

  it('preserves every event and field through a reopen from disk and through toJSON/fromJSON', async () => {
    const config: BusConfigInput = {
      isolation: { reader: { level: 3, image: 'rootfs:/srv/rootfs' } },
    };
    const bus = await openBus(config);
    await bus.publish('lead1', {
      topic: 'plan',
      payload: { nested: [1, 'two', null, { three: true }] },
    });
    await bus.publish('lead1', { topic: 'dm', payload: 'hi', to: 'writer' });
    const checkpoint = await bus.checkpoint('writer', {
      summary: 's',
      state: { a: [1, 2] },
      artifacts: ['x', 'y'],
      workspace: WORKSPACE,
    });
    await bus.configureIsolation('lead1', {
      participant: 'writer',
      profile: { level: 2, readonly_paths: ['/opt'] },
    });
    await bus.registerParticipant({
      name: 'late',
      role: 'read',
      token_sha256: hashToken('late-token'),
    });
    const handoff = await bus.handoff('writer', {
      to: 'late',
      checkpoint: checkpoint.id,
      note: 'n',
      workspace: WORKSPACE,
    });
    const before = await bus.read();
    const packetBefore = await bus.buildResumePacket(handoff.id);
    const exported = JSON.parse(JSON.stringify(bus)) as unknown;
    await bus.close();
    open.pop();

    const reopened = await openBus(config);
    expect(await reopened.read()).toEqual(before);
    expect(reopened.toJSON().events).toEqual(before);
    expect(await reopened.buildResumePacket(handoff.id)).toEqual(packetBefore);
    expect(reopened.authenticate('late', 'late-token')).toBe(true);
    expect((await reopened.publish('writer', { topic: 't', payload: 1 })).seq).toBe(
      before.length + 1,
    );

    const otherCell = await makeCell(root);
    const imported = await MissionBus.fromJSON(exported, { cellDir: otherCell });
    open.push(imported);
    expect(await imported.read()).toEqual(before);
    expect(imported.mission).toEqual(MISSION);
    expect(await imported.buildResumePacket(handoff.id)).toEqual({ ...packetBefore });
    expect(imported.authenticate('late', 'late-token')).toBe(true);
    expect(
      JSON.parse(
        await readFile(
          join(otherCell, 'bus', 'inbox', 'writer', inboxFileName(before[1] as BusEvent)),
          'utf8',
        ),
      ),
    ).toEqual(before[1]);
    await expect(
      MissionBus.fromJSON(exported, { cellDir: otherCell, lockTimeoutMs: 50 }),
    ).rejects.toMatchObject({ code: 'BUS_LOCKED' });
    await imported.close();
    await expect(MissionBus.fromJSON(exported, { cellDir: otherCell })).rejects.toMatchObject({
      code: 'BUS_EXISTS',
    });
    await expect(
      MissionBus.fromJSON({ format: 'nope' }, { cellDir: otherCell }),
    ).rejects.toMatchObject({ code: 'BUS_INVALID' });
  });

  it('repairs a torn last line on open, saves and reports it, and continues the sequence', async () => {
    const bus = await openBus();
    await bus.publish('writer', { topic: 't', payload: 1 });
    await bus.publish('writer', { topic: 't', payload: 2 });
    await bus.close();
    open.pop();
    const [segment] = await segmentsOf(cellDir);
    const path = join(cellDir, 'bus', segment as string);
    const torn = '{"seq":3,"id":"x","ts":"2026-11-22T1';
    await appendFile(path, torn);

    const reopened = await openBus();
    expect(reopened.repairs).toHaveLength(1);
    const [repair] = reopened.repairs;
    expect(repair).toMatchObject({ segment: path, line: 3, bytes: Buffer.byteLength(torn) });
    expect(repair?.reason).toMatch(/torn/);
    expect(await readFile(repair?.savedTo as string, 'utf8')).toBe(torn);
    expect((await reopened.read()).map((event) => event.seq)).toEqual([1, 2]);
    expect((await reopened.publish('writer', { topic: 't', payload: 3 })).seq).toBe(3);
    expect((await reopened.readAudit()).map((entry) => entry.event)).toContain('bus_log_repaired');
    expect(
      readFileSync(path, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line).seq),
    ).toEqual([1, 2, 3]);
  });

  it('refuses to open a log with a bad line in the middle (not a torn write)', async () => {
    const bus = await openBus();
    await bus.publish('writer', { topic: 't', payload: 1 });
    await bus.close();
    open.pop();
    const [segment] = await segmentsOf(cellDir);
    const path = join(cellDir, 'bus', segment as string);
    const lines = (await readFile(path, 'utf8')).split('\n');
    await writeFile(
      path,
      `${lines[0]}\n{"garbage":true}\n${lines[0]?.replace('"seq":1', '"seq":2')}\n`,
    );
    await expect(MissionBus.open({ cellDir, config: { mission: MISSION } })).rejects.toMatchObject({
      code: 'BUS_CORRUPT',
      message: expect.stringMatching(/line 2/),
    });
  });

  it('rotates segments and reads transparently across them, from memory or disk', async () => {
    const bus = await openBus({ log: { segment_max_bytes: 2048, cache_max_events: 5 } });
    const published: BusEvent[] = [];
    for (let index = 0; index < 120; index += 1)
      published.push(
        await bus.publish('writer', { topic: 'load', payload: { index, pad: 'p'.repeat(40) } }),
      );
    const segments = await segmentsOf(cellDir);
    expect(segments.length).toBeGreaterThan(5);
    expect(segments[0]).toBe('stream-00000000000000000001.jsonl');
    expect(await bus.read({ after: 0, limit: 1000 })).toEqual(published);
    expect(await bus.read({ after: 57, limit: 3 })).toEqual(published.slice(57, 60));
    const seen: number[] = [];
    for await (const event of bus.subscribe({ after: 10 })) {
      seen.push(event.seq);
      if (event.seq === 120) break;
    }
    expect(seen).toEqual(published.slice(10).map((event) => event.seq));
    await bus.close();
    open.pop();
    const reopened = await openBus({ log: { segment_max_bytes: 2048, cache_max_events: 5 } });
    expect(await reopened.read({ after: 0, limit: 1000 })).toEqual(published);
    expect(reopened.toJSON().events).toEqual(published);
  });

  it.each([
    { mode: 'always' as const },
    { mode: 'batch' as const, interval_ms: 5 },
    { mode: 'never' as const },
  ])('acknowledges only events already in the log file (fsync $mode)', async (fsync) => {
    const bus = await openBus({ log: { fsync } });
    const events = await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        bus.publish('writer', { topic: 't', payload: index }),
      ),
    );
    const [segment] = await segmentsOf(cellDir);
    const onDisk = readFileSync(join(cellDir, 'bus', segment as string), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as BusEvent);
    expect(onDisk).toEqual(events);
    expect(events.map((event) => event.seq)).toEqual(
      Array.from({ length: 50 }, (_, index) => index + 1),
    );
  });

  it('delivers the backlog, then live events, to an in-process subscriber', async () => {
    const bus = await openBus();
    await bus.publish('writer', { topic: 't', payload: 1 });
    await bus.publish('writer', { topic: 't', payload: 2 });
    const controller = new AbortController();
    const seen: number[] = [];
    const done = (async () => {
      for await (const event of bus.subscribe({ after: 1, signal: controller.signal })) {
        seen.push(event.seq);
        if (seen.length === 3) controller.abort();
      }
    })();
    await bus.publish('writer', { topic: 't', payload: 3 });
    await bus.publish('writer', { topic: 't', payload: 4 });
    await done;
    expect(seen).toEqual([2, 3, 4]);
  });

  it('holds the cell: a second bus on the same cell is refused with BUS_LOCKED', async () => {
    await openBus();
    await expect(
      MissionBus.open({ cellDir, config: { mission: MISSION }, lockTimeoutMs: 100 }),
    ).rejects.toMatchObject({ code: 'BUS_LOCKED' });
  });

  it('takes the mission from cell.json when the config has none', async () => {
    const bus = await MissionBus.open({ cellDir });
    open.push(bus);
    expect(bus.mission.title).toBe('Port the parser');
    expect(bus.mission.id).toBe(cellDir.split('/').at(-1));
  });

  it('refuses a bad config naming every bad field', async () => {
    await expect(
      MissionBus.open({
        cellDir,
        config: {
          participants: [{ name: 'Bad Name', role: 'boss' }],
          log: { fsync: { mode: 'sometimes' } },
        } as never,
      }),
    ).rejects.toThrow(/participants\.0\.name: .*participants\.0\.role: .*log\.fsync/s);
  });

  it('refuses operations once closed', async () => {
    const bus = await openBus();
    await bus.close();
    expect(await codeOf(bus.publish('writer', { topic: 't', payload: 1 }))).toBe('BUS_CLOSED');
    expect(bus.closed).toBe(true);
  });

  it('sets and clears isolation profiles through the stream', async () => {
    const bus = await openBus({ isolation: { reader: { level: 1 } } });
    await bus.configureIsolation('lead1', {
      participant: 'writer',
      profile: { level: 3, network: 'none' },
    });
    await bus.configureIsolation('lead1', { participant: 'reader', profile: null });
    expect(bus.isolationProfiles()).toEqual({ writer: { level: 3, network: 'none' } });
    expect(
      await codeOf(
        bus.configureIsolation('lead1', { participant: 'nobody', profile: { level: 1 } }),
      ),
    ).toBe('BUS_UNKNOWN_PARTICIPANT');
  });
});
