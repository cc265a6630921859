import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApprovalsFileSchema } from '@pit/cell-spec';
import { afterEach, describe, expect, it } from 'vitest';
import { approvalKey, openApprovalStore, readApprovals, type ApprovalStore } from './approvals.js';
import type { Logger } from './logger.js';

// Written by the previous daemon (its openApprovalStore: one pending request with a substitute in
// a cell, one escalation outside cells denied with `pit deny --reason` while no daemon ran).
const LEGACY = new URL('./__fixtures__/approvals-v1/', import.meta.url);
const PENDING = 'a8c3f58ef07b648445e886467df3af90';
const DENIED = '470c21bc52be25b7c3041bda198b9c78';
const CELL = '3f2a9c1e-8b7d-4e6f-9a1b-2c3d4e5f6a7b';
const T0 = Date.parse('2026-12-01T10:00:00.000Z');

const dirs: string[] = [];
const stores: ApprovalStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
  await Promise.all(dirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

async function stateDir(): Promise<string> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'pit-approvals-'));
  dirs.push(dir);
  return dir;
}

async function legacyStateDir(): Promise<string> {
  const dir = await stateDir();
  for (const name of ['approvals.json', 'approval-meta.json'])
    await fs.copyFile(new URL(name, LEGACY), join(dir, name));
  return dir;
}

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (message: string) => void lines.push(`${level} ${message}`);
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

async function open(dir: string, logger?: Logger, at = T0 + 60_000): Promise<ApprovalStore> {
  const store = await openApprovalStore({
    stateDir: dir,
    now: () => at,
    ...(logger ? { logger } : {}),
  });
  stores.push(store);
  return store;
}

describe('openApprovalStore on a state directory of the previous version', () => {
  it('migrates approvals.json and approval-meta.json into one file, losing no pending request', async () => {
    const dir = await legacyStateDir();
    const logger = recordingLogger();
    const store = await open(dir, logger);
    expect(store.list('pending')).toEqual([
      expect.objectContaining({
        id: PENDING,
        agent: 'forge',
        cell_uuid: CELL,
        kind: 'revive',
        proposed: 'rollback_and_restart',
        substitute: 'forge-2',
        channels: ['cli', 'http', 'telegram'],
        requested_at: T0,
        expires_at: T0 + 30 * 60_000,
        on_timeout: 'proceed',
      }),
    ]);
    expect(store.latest(`${CELL}/forge`)?.id).toBe(PENDING);
    expect(store.get(DENIED)).toMatchObject({
      status: 'denied',
      kind: 'escalation',
      decided_by: 'ops (cli)',
      decided_via: 'cli',
      reason: 'looking into it',
      decided_at: T0 + 2000,
    });
    expect(approvalKey(store.get(DENIED)!)).toBe('host/anvil');
    await expect(fs.access(join(dir, 'approval-meta.json'))).rejects.toThrow();
    const file = ApprovalsFileSchema.parse(
      JSON.parse(await fs.readFile(join(dir, 'approvals.json'), 'utf8')),
    );
    expect(file.requests.map((request) => request.id).sort()).toEqual([DENIED, PENDING].sort());
    expect(logger.lines.join('\n')).toMatch(/migrated 2 request\(s\)/);
    // The migrated request still answers, once.
    expect(
      await store.decide(PENDING, 'approve', { by: 'ops', channel: 'http', now: 0 }),
    ).toMatchObject({
      ok: true,
      agent: 'forge',
      cell: CELL,
    });
    expect(await store.decide(PENDING, 'deny', { channel: 'cli', now: 0 })).toMatchObject({
      ok: false,
      reason: 'already_decided',
    });
  });

  it('keeps a request the previous daemon had no fields for (killed between its two writes)', async () => {
    const dir = await legacyStateDir();
    const metaPath = join(dir, 'approval-meta.json');
    const meta = JSON.parse(await fs.readFile(metaPath, 'utf8')) as {
      meta: Record<string, unknown>;
    };
    delete meta.meta[PENDING];
    await fs.writeFile(metaPath, JSON.stringify(meta));
    const store = await open(dir);
    expect(store.get(PENDING)).toMatchObject({
      status: 'pending',
      proposed: 'rollback_and_restart',
      requested_at: T0,
      expires_at: T0 + 30 * 60_000,
      on_timeout: 'record_only',
    });
  });

  it('finishes a migration interrupted after the new file was written', async () => {
    const dir = await legacyStateDir();
    await (await open(dir)).close();
    const migrated = await fs.readFile(join(dir, 'approvals.json'), 'utf8');
    await fs.copyFile(new URL('approval-meta.json', LEGACY), join(dir, 'approval-meta.json'));
    const store = await open(dir);
    expect(store.list('pending').map((approval) => approval.id)).toEqual([PENDING]);
    await expect(fs.access(join(dir, 'approval-meta.json'))).rejects.toThrow();
    expect(await fs.readFile(join(dir, 'approvals.json'), 'utf8')).toBe(migrated);
  });

  it('is read by pit status / pit approvals as it would be migrated, without writing', async () => {
    const dir = await legacyStateDir();
    const before = await fs.readFile(join(dir, 'approvals.json'), 'utf8');
    const approvals = await readApprovals(dir);
    expect(approvals.find((approval) => approval.id === PENDING)).toMatchObject({
      status: 'pending',
      on_timeout: 'proceed',
    });
    expect(await fs.readFile(join(dir, 'approvals.json'), 'utf8')).toBe(before);
    await expect(fs.access(join(dir, 'approval-meta.json'))).resolves.toBeUndefined();
  });
});

describe('openApprovalStore on a corrupt approvals file', () => {
  it.each([
    ['a torn write', '{"version": 2, "requests": [{"id": "'],
    ['a file of another shape', JSON.stringify({ version: 2, requests: [{ id: 'x' }] })],
  ])(
    'starts with no requests after %s, keeping the bad file aside and logging it',
    async (_, text) => {
      const dir = await stateDir();
      await fs.writeFile(join(dir, 'approvals.json'), text);
      const logger = recordingLogger();
      const store = await open(dir, logger, Date.parse('2026-12-03T10:15:00.000Z'));
      expect(store.list()).toEqual([]);
      const aside = join(dir, 'approvals.json.corrupt-2026-12-03T10-15-00-000Z');
      expect(await fs.readFile(aside, 'utf8')).toBe(text);
      expect(logger.lines.find((line) => line.startsWith('error'))).toContain(aside);
      // And it stays a problem of the status, naming where the bytes went.
      expect(store.problems()).toEqual([expect.stringContaining(`kept aside as ${aside}`)]);
      const asked = await store.ask({
        agent: 'forge',
        kind: 'revive',
        proposed: 'restart',
        reasons: ['dead'],
        channels: ['http'],
        expires_at: Date.parse('2026-12-03T10:25:00.000Z'),
        on_timeout: 'record_only',
      });
      expect((await readApprovals(dir)).map((approval) => approval.id)).toEqual([asked.id]);
      await store.close();
      // A store opened on the good file has no problem.
      const again = await open(dir, logger, Date.parse('2026-12-03T10:16:00.000Z'));
      expect(again.problems()).toEqual([]);
      await again.close();
    },
  );
});

describe('ApprovalStore', () => {
  it('records who answered over HTTP and why, and refuses an unknown request', async () => {
    const dir = await stateDir();
    const store = await open(dir);
    const asked = await store.ask({
      agent: 'forge',
      cell_uuid: CELL,
      mission: 'survey',
      kind: 'revive',
      proposed: 'restart',
      reasons: ['dead'],
      channels: ['http'],
      expires_at: T0 + 10 * 60_000,
      on_timeout: 'record_only',
    });
    expect(
      await store.decide(asked.id, 'deny', {
        by: 'ops',
        reason: 'not now',
        channel: 'http',
        now: 0,
      }),
    ).toMatchObject({ ok: true, decision: 'deny' });
    expect(store.get(asked.id)).toMatchObject({
      status: 'denied',
      decided_by: 'ops',
      decided_via: 'http',
      reason: 'not now',
    });
    expect(
      await store.decide('0'.repeat(32), 'approve', { channel: 'http', now: 0 }),
    ).toMatchObject({ ok: false, reason: 'not_found' });
  });
});
