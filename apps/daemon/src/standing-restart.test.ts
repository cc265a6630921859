import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, reapLater, tempDir, waitFor, within } from '@pit/test-kit';
import { agentEnv, isGoneOrZombie, recordingLogger } from '../test/helpers.js';
import {
  createExecutor,
  newSpawnNonce,
  type AgentProcess,
  type Executor,
  type StartAgentOptions,
} from './executor.js';
import { findMarkedProcesses, markedKey } from './proc.js';

let executor: Executor | undefined;

afterEach(async () => {
  for (const agent of executor?.running() ?? []) reapLater(agent.pid);
  await executor?.close();
  executor = undefined;
  await cleanup();
});

const INSTANCE = 'standing0';

/** An executor with a ready launcher, an agent `forge` outside cells (a 30 s sleep), and its log. */
async function running() {
  const dir = await tempDir('pit-standing-');
  const { logger, lines } = recordingLogger();
  executor = createExecutor({ env: process.env, launcher: true, instance: INSTANCE, logger });
  await waitFor(() => executor!.launcherPid(), 15_000, 'the agent launcher');
  const logPath = join(dir, 'forge.log');
  const spec = (nonce: string, env: Record<string, string> = {}): StartAgentOptions => ({
    agent: 'forge',
    argv: ['sleep', '30'],
    env: { ...agentEnv(), ...env },
    nonce,
    cwd: dir,
    logPath,
  });
  const first = await executor.start(spec(newSpawnNonce()));
  reapLater(first.pid);
  return { executor, first, spec, logPath, lines };
}

/** The pid of the process carrying `nonce`, if one runs. */
const pidOf = async (nonce: string) =>
  (await findMarkedProcesses(INSTANCE, { nonce })).get(markedKey(undefined, 'forge'))?.pid;

/** Leaves an order for `first`, SIGKILLs it, and returns the pid of the process the order started. */
async function killWithOrder(executor: Executor, first: AgentProcess, spec: StartAgentOptions) {
  expect(await executor.standRestart(spec, first)).toBe(true);
  process.kill(first.pid, 'SIGKILL');
  await within(first.exited, 5000, 'exit');
  const ahead = await waitFor(() => pidOf(spec.nonce!), 5000, 'the process the order started');
  reapLater(ahead);
  return ahead;
}

describe('standing restarts (executor and agent launcher)', () => {
  it('starts the next process the moment the agent exits; the start that follows keeps it', async () => {
    const { executor, first, spec, logPath, lines } = await running();
    const next = newSpawnNonce();
    expect(await executor.standRestart(spec(next), first)).toBe(true);
    process.kill(first.pid, 'SIGKILL');
    const exit = await within(first.exited, 5000, 'exit');
    expect(exit).toMatchObject({ signal: 'SIGKILL', prestarted: next });
    // Running before anything asked the executor for it.
    const ahead = await waitFor(() => pidOf(next), 5000, 'the process the order started');
    reapLater(ahead);
    const kept = await executor.start(spec(next));
    expect(kept.pid).toBe(ahead);
    expect(lines.some((line) => /agent started .*"standing_order":true/.test(line))).toBe(true);
    // One header per start, the second written by the launcher at the exit.
    const log = await fs.readFile(logPath, 'utf8');
    expect(log.match(/^--- pit: starting forge at level 1 \(/gm)).toHaveLength(2);
    // It is tracked as any start: stopping it ends it.
    await executor.stop(kept, { graceMs: 1000 });
    expect(await isGoneOrZombie(ahead)).toBe(true);
  });

  it('a stop withdraws the order: nothing is started at that exit', async () => {
    const { executor, first, spec } = await running();
    const next = newSpawnNonce();
    expect(await executor.standRestart(spec(next), first)).toBe(true);
    const exit = await executor.stop(first, { graceMs: 1000 });
    expect(exit.prestarted).toBeUndefined();
    expect(await pidOf(next)).toBeUndefined();
  });

  it('a stop asked while the order is being prepared leaves none: nothing is started at that exit', async () => {
    const { executor, first, spec } = await running();
    const next = newSpawnNonce();
    let recorded!: () => void;
    // The order waits for the next start's record: the stop comes in between.
    const standing = executor.standRestart(
      { ...spec(next), recorded: new Promise<void>((resolve) => (recorded = resolve)) },
      first,
    );
    const stopped = executor.stop(first, { graceMs: 1000 });
    recorded();
    expect(await standing).toBe(false);
    expect((await stopped).prestarted).toBeUndefined();
    expect(await pidOf(next)).toBeUndefined();
  });

  it('kills what the order started when the daemon does not restart the agent (discardPrestarted)', async () => {
    const { executor, first, spec, lines } = await running();
    const next = newSpawnNonce();
    const ahead = await killWithOrder(executor, first, spec(next));
    await executor.discardPrestarted(next, 'the policy asked for approval');
    expect(await isGoneOrZombie(ahead)).toBe(true);
    expect(lines.some((line) => line.includes('killed the restart a standing order made'))).toBe(
      true,
    );
    expect(executor.running()).toEqual([]);
  });

  it('a start that differs from the order (its environment changed) kills that process and forks its own', async () => {
    const { executor, first, spec } = await running();
    const next = newSpawnNonce();
    const ahead = await killWithOrder(executor, first, spec(next));
    const fresh = await executor.start(spec(next, { MODEL: 'changed' }));
    reapLater(fresh.pid);
    expect(fresh.pid).not.toBe(ahead);
    expect(await isGoneOrZombie(ahead)).toBe(true);
    const environ = await fs.readFile(`/proc/${fresh.pid}/environ`, 'utf8');
    expect(environ.split('\0')).toContain('MODEL=changed');
  });

  it('leaves no order for a process the launcher did not start, or that has exited', async () => {
    const { executor, first, spec } = await running();
    process.kill(first.pid, 'SIGKILL');
    await within(first.exited, 5000, 'exit');
    expect(await executor.standRestart(spec(newSpawnNonce()), first)).toBe(false);
  });
});
