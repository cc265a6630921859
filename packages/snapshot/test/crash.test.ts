import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, watch as fsWatch } from 'node:fs';
import { join } from 'node:path';
import { cellPaths, provisionCell } from '@pit/cell-spec';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createCheckpoint,
  createSnapshotStore,
  recoverWorkspace,
  restoreCheckpoint,
} from '../src/index.js';
import { mountTmpfs, readTree, spawnScript, type Child, type Tree } from './helpers.js';

const CHILD = join(import.meta.dirname, 'children', 'crash-child.ts');
const CONCURRENCY = 3;
const live = new Set<Child>();
const dirs: string[] = [];
// SIGKILL consistency does not depend on fsync (that is for power loss): a tmpfs keeps the many runs fast.
let scratch: { dir: string; unmount: () => Promise<void> } | undefined;

beforeAll(async () => {
  scratch = await mountTmpfs(256 * 1024 * 1024);
});

afterEach(async () => {
  for (const child of live) child.kill();
  await Promise.all([...live].map((child) => child.exited));
  live.clear();
});

afterAll(async () => {
  await Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
  await scratch?.unmount();
});

interface Scenario {
  /**
   * Prepares one independent run: the child's arguments, the directories whose changes mark
   * the operation's progress, and a check for after the kill.
   */
  setup(
    dir: string,
  ): Promise<{ args: Record<string, unknown>; watch: string[]; check: () => Promise<string> }>;
}

/**
 * Runs `iterations` children and SIGKILLs each at a random moment of its operation. The
 * moment is drawn in units of progress rather than time (the load on this machine varies
 * too much for a timer): after a random number, from zero to all, of the filesystem changes
 * the operation makes in the watched directories. Checks the invariant after each kill.
 */
async function killRepeatedly(
  op: string,
  iterations: number,
  scenario: Scenario,
): Promise<{ interrupted: number; outcomes: Record<string, number> }> {
  let changes = 0;
  let interrupted = 0;
  const outcomes: Record<string, number> = {};
  const once = async (killAfter: number | undefined): Promise<number> => {
    const dir = await fs.mkdtemp(join(scratch?.dir as string, 'run-'));
    dirs.push(dir);
    const { args, watch, check } = await scenario.setup(dir);
    const child = spawnScript(CHILD, [JSON.stringify({ op, ...args })]);
    live.add(child);
    await child.waitForLine(/^ready$/, 60_000);
    let seen = 0;
    const watchers = watch.map((path) =>
      fsWatch(path, () => {
        seen += 1;
        if (killAfter !== undefined && seen >= killAfter) child.kill();
      }),
    );
    child.process.stdin?.write('go\n');
    if (killAfter === 0) child.kill();
    const exit = await child.exited;
    for (const watcher of watchers) watcher.close();
    live.delete(child);
    if (!/^done \d+$/m.test(child.output())) {
      expect(exit.signal, child.output()).toBe('SIGKILL');
      interrupted += 1;
    }
    const outcome = await check();
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    await fs.rm(dir, { recursive: true, force: true });
    return seen;
  };
  // Calibrate: how many changes does one whole operation make?
  changes = await once(undefined);
  expect(changes).toBeGreaterThan(0);
  let next = 0;
  const worker = async () => {
    while (next < iterations) {
      next += 1;
      await once(Math.floor(Math.random() * (changes + 1)));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { interrupted, outcomes };
}

async function writeConfig(config: string, version: number): Promise<void> {
  for (let i = 0; i < 12; i += 1) {
    const name = join(config, i < 6 ? `file-${i}.bin` : join('sub', `file-${i}.txt`));
    if (version === 2 && i % 5 === 4) {
      await fs.rm(name, { force: true }); // deleted by the "agent"
      continue;
    }
    if (version === 2 && i % 3 === 0) continue; // unchanged
    const body =
      i < 6 ? randomBytes(48 * 1024) : Buffer.from(`version ${version} of file ${i}\n`.repeat(50));
    await fs.writeFile(name, body, { mode: version === 2 && i === 7 ? 0o600 : 0o644 });
    await fs.chmod(name, version === 2 && i === 7 ? 0o600 : 0o644);
  }
  if (version === 2) {
    await fs.writeFile(join(config, 'added-by-agent.json'), '{"new": true}');
    await fs.writeFile(join(config, 'sub', 'added.txt'), randomBytes(10_000));
  }
}

describe('crash consistency under SIGKILL', () => {
  it('a rollback killed at any moment leaves the config wholly old or wholly new, and the store consistent', async () => {
    const result = await killRepeatedly('rollback', 12, {
      async setup(dir) {
        const config = join(dir, 'config');
        await fs.mkdir(join(config, 'sub'), { recursive: true });
        await writeConfig(config, 1);
        const stateDir = join(dir, 'state');
        const requestLog = join(dir, 'requests.jsonl');
        const store = createSnapshotStore({ stateDir, requestLog });
        await store.snapshot('forge', [config]);
        const good: Tree = await readTree(config);
        await writeConfig(config, 2);
        const bad: Tree = await readTree(config);
        const addedHashes = await Promise.all(
          ['added-by-agent.json', join('sub', 'added.txt')].map(async (name) =>
            createHash('sha256')
              .update(await fs.readFile(join(config, name)))
              .digest('hex'),
          ),
        );
        const store_ = join(stateDir, 'snapshots', 'forge');
        return {
          args: { stateDir, requestLog, agent: 'forge' },
          watch: [config, join(config, 'sub'), store_, join(store_, 'objects')],
          check: async () => {
            const recovery = await createSnapshotStore({ stateDir, requestLog }).recover('forge');
            const tree = await readTree(config);
            // Wholly the last known good (the rollback took effect) or wholly as the agent left it (it did not).
            const state =
              JSON.stringify(tree) === JSON.stringify(good)
                ? 'restored'
                : JSON.stringify(tree) === JSON.stringify(bad)
                  ? 'untouched'
                  : 'mixed';
            expect(
              state,
              `config after recovery (${recovery.action}) is neither wholly old nor wholly new`,
            ).not.toBe('mixed');
            const verify = await store.verify('forge');
            expect(verify.problems).toEqual([]);
            expect(verify.journal).toBe(false);
            const records = (await fs.readFile(requestLog, 'utf8').catch(() => ''))
              .split('\n')
              .filter(Boolean);
            expect(records).toHaveLength(state === 'restored' ? 1 : 0);
            if (state === 'restored') {
              // What the agent added was moved into the store, never lost.
              const objects = await fs.readdir(join(stateDir, 'snapshots', 'forge', 'objects'));
              for (const added of addedHashes) expect(objects).toContain(added);
              expect(await fs.readdir(join(stateDir, 'snapshots', 'forge', 'aside'))).toHaveLength(
                1,
              );
            }
            // The store still works: the next rollback gets to last known good.
            await store.rollback('forge');
            expect(await readTree(config)).toEqual(good);
            expect(
              (await fs.readFile(requestLog, 'utf8')).split('\n').filter(Boolean),
            ).toHaveLength(1);
            return state;
          },
        };
      },
    });
    expect(result.interrupted).toBeGreaterThanOrEqual(2);
  });

  it('a snapshot killed at any moment leaves the pointer on the old or the new set, never a broken store', async () => {
    const result = await killRepeatedly('snapshot', 8, {
      async setup(dir) {
        const config = join(dir, 'config');
        await fs.mkdir(join(config, 'sub'), { recursive: true });
        await writeConfig(config, 1);
        const stateDir = join(dir, 'state');
        const store = createSnapshotStore({ stateDir, keep: 1 });
        const old = (await store.snapshot('forge', [config])).set;
        await writeConfig(config, 2);
        const configTree = await readTree(config);
        const store_ = join(stateDir, 'snapshots', 'forge');
        return {
          args: { stateDir, agent: 'forge', paths: [config] },
          watch: [store_, join(store_, 'objects'), join(store_, 'sets')],
          check: async () => {
            await createSnapshotStore({ stateDir }).recover('forge');
            const before = (await store.history('forge'))[0]?.set;
            const verify = await store.verify('forge');
            expect(verify.problems).toEqual([]);
            expect(await readTree(config)).toEqual(configTree);
            const objects = await fs.readdir(join(stateDir, 'snapshots', 'forge', 'objects'));
            expect(objects.filter((name) => name.endsWith('.tmp'))).toEqual([]);
            const after = await store.snapshot('forge', [config]);
            expect([old, after.set]).toContain(before);
            expect((await store.verify('forge')).ok).toBe(true);
            return before === old ? 'old pointer' : 'new pointer';
          },
        };
      },
    });
    expect(result.interrupted).toBeGreaterThanOrEqual(1);
  });

  it('a checkpoint restore killed at any moment leaves the workspace wholly old or wholly new', async () => {
    const result = await killRepeatedly('restore', 4, {
      async setup(dir) {
        const { dir: cell } = await provisionCell(join(dir, 'missions'), {
          mission: 'crash',
          created_by: 'test',
        });
        const workspace = cellPaths(cell).workspace;
        await fs.mkdir(join(workspace, 'src'));
        for (let i = 0; i < 12; i += 1)
          await fs.writeFile(join(workspace, 'src', `f${i}`), randomBytes(16 * 1024));
        await createCheckpoint(cell, { createdBy: 'test', gzipLevel: 1 });
        const checkpointed = await readTree(workspace);
        await fs.rm(join(workspace, 'src'), { recursive: true });
        await fs.writeFile(join(workspace, 'progress.txt'), 'after the checkpoint');
        const current = await readTree(workspace);
        return {
          args: { cell },
          watch: [cell, cellPaths(cell).checkpoints],
          check: async () => {
            await recoverWorkspace(cell);
            const tree = await readTree(workspace);
            const state =
              JSON.stringify(tree) === JSON.stringify(checkpointed)
                ? 'restored'
                : JSON.stringify(tree) === JSON.stringify(current)
                  ? 'untouched'
                  : 'mixed';
            expect(state).not.toBe('mixed');
            expect(
              (await fs.readdir(cell)).filter((name) => name.startsWith('.workspace-')),
            ).toEqual([]);
            await restoreCheckpoint(cell);
            expect(await readTree(workspace)).toEqual(checkpointed);
            return state;
          },
        };
      },
    });
    expect(result.interrupted).toBeGreaterThanOrEqual(1);
  });
});
