import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CellEventSchema } from '@pit/cell-spec';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir } from '../test/helpers.js';
import type { SnapshotError } from './errors.js';
import { sha256 } from './files.js';
import { createSnapshotStore } from './snapshot-store.js';

const run = promisify(execFile);
let root: string;
let repo: string;
let live: string;
let requestLog: string;

async function git(...args: string[]): Promise<string> {
  const { stdout } = await run('git', [
    '-C',
    repo,
    '-c',
    'user.name=Pit Test',
    '-c',
    'user.email=pit@example.invalid',
    ...args,
  ]);
  return stdout.trim();
}

const CANONICAL_JSON = '{\n  "model": "claude-sonnet",\n  "provider": "anthropic"\n}\n';
const CANONICAL_SH = '#!/bin/sh\nexec agent\n';

beforeEach(async () => {
  root = await makeTempDir();
  repo = join(root, 'fleet-config');
  live = join(root, 'home', 'forge');
  requestLog = join(root, 'requests.jsonl');
  await fs.mkdir(join(repo, 'agents', 'forge'), { recursive: true });
  await fs.mkdir(live, { recursive: true });
  await git('init', '-q', '-b', 'main');
  await fs.writeFile(join(repo, 'agents', 'forge', 'agent.json'), CANONICAL_JSON);
  await fs.writeFile(join(repo, 'agents', 'forge', 'start.sh'), CANONICAL_SH, { mode: 0o755 });
  await git('add', '.');
  await git('commit', '-q', '-m', 'forge: canonical config');
  await git('tag', 'v1');
  // A later commit that must not be picked when the ref says v1.
  await fs.writeFile(join(repo, 'agents', 'forge', 'agent.json'), '{ "model": "untested" }\n');
  await git('commit', '-q', '-am', 'forge: experiment');
});

afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('rollback with a canonical source in git', () => {
  it('restores the canonical version from a real git repository when no snapshot exists', async () => {
    const store = createSnapshotStore({ stateDir: join(root, 'state'), requestLog });
    const target = join(live, 'agent.json');
    await fs.writeFile(target, '{ "model": ', { mode: 0o600 });
    const canonical = {
      repository: repo,
      ref: 'v1',
      files: [
        { path: 'agents/forge/agent.json', target },
        { path: 'agents/forge/start.sh', target: join(live, 'bin', 'start.sh') },
      ],
    };
    const result = await store.rollback('forge', {
      canonical,
      reason: 'agent_dead: no snapshot yet',
    });
    expect(result).toMatchObject({ status: 'rolled_back', source: 'git', set: null });
    expect(result.files).toEqual([
      { path: target, old_sha256: sha256('{ "model": '), new_sha256: sha256(CANONICAL_JSON) },
      { path: join(live, 'bin', 'start.sh'), old_sha256: null, new_sha256: sha256(CANONICAL_SH) },
    ]);
    expect(await fs.readFile(target, 'utf8')).toBe(CANONICAL_JSON);
    // An existing file keeps its permissions (a secret stays private); a new one gets git's mode.
    expect((await fs.stat(target)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(join(live, 'bin', 'start.sh'))).mode & 0o777).toBe(0o755);
    const log = (await fs.readFile(requestLog, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown);
    expect(log).toHaveLength(1);
    expect(CellEventSchema.safeParse(log[0]).success).toBe(true);
    expect(log[0]).toMatchObject({ event: 'config_rolled_back', agent: 'forge', source: 'git' });
    // A second rollback finds the canonical version in place.
    expect((await store.rollback('forge', { canonical })).status).toBe('unchanged');
  });

  it('prefers the last-known-good snapshot over the canonical source once one exists', async () => {
    const store = createSnapshotStore({ stateDir: join(root, 'state') });
    const target = join(live, 'agent.json');
    await fs.writeFile(target, '{ "model": "known-good" }\n');
    await store.snapshot('forge', [target]);
    await fs.writeFile(target, 'broken');
    const result = await store.rollback('forge', {
      canonical: { repository: repo, files: [{ path: 'agents/forge/agent.json', target }] },
    });
    expect(result.source).toBe('snapshot');
    expect(await fs.readFile(target, 'utf8')).toBe('{ "model": "known-good" }\n');
  });

  it('reads HEAD by default', async () => {
    const store = createSnapshotStore({ stateDir: join(root, 'state') });
    const target = join(live, 'agent.json');
    await store.rollback('forge', {
      canonical: { repository: repo, files: [{ path: 'agents/forge/agent.json', target }] },
    });
    expect(await fs.readFile(target, 'utf8')).toBe('{ "model": "untested" }\n');
  });

  it('reports a missing ref, a missing path, a directory and a bad ref clearly, touching nothing', async () => {
    const store = createSnapshotStore({ stateDir: join(root, 'state') });
    const target = join(live, 'agent.json');
    await fs.writeFile(target, 'current');
    const attempt = (ref: string, path: string, repository = repo) =>
      store.rollback('forge', { canonical: { repository, ref, files: [{ path, target }] } }).then(
        () => undefined,
        (error: unknown) => error as SnapshotError,
      );
    expect(await attempt('no-such-tag', 'agents/forge/agent.json')).toMatchObject({
      code: 'SNAPSHOT_GIT',
    });
    const missing = await attempt('v1', 'agents/forge/nope.json');
    expect(missing).toMatchObject({ code: 'SNAPSHOT_GIT' });
    expect(missing?.message).toContain('no such file');
    expect(await attempt('v1', 'agents/forge')).toMatchObject({
      code: 'SNAPSHOT_GIT',
      message: expect.stringContaining('directory'),
    });
    expect(await attempt('--output=/tmp/x', 'agents/forge/agent.json')).toMatchObject({
      code: 'SNAPSHOT_INVALID',
    });
    expect(await attempt('v1', '../etc/passwd')).toMatchObject({ code: 'SNAPSHOT_INVALID' });
    expect(await attempt('v1', 'agents/forge/agent.json', join(root, 'not-a-repo'))).toMatchObject({
      code: 'SNAPSHOT_GIT',
    });
    expect(await fs.readFile(target, 'utf8')).toBe('current');
  });
});
