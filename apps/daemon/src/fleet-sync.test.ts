import { describe, expect, it } from 'vitest';
import { inTurns } from './fleet-sync.js';

/** A promise settled from outside, for a run the test finishes when it chooses. */
function gate() {
  let open!: () => void;
  let fail!: (error: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('inTurns', () => {
  it('runs every item once, never more than the limit at a time, taking them in order', async () => {
    const gates = Array.from({ length: 40 }, gate);
    const begun: number[] = [];
    let running = 0;
    let most = 0;
    const done = inTurns(gates, 16, async (item, index) => {
      begun.push(index);
      running += 1;
      most = Math.max(most, running);
      await item.promise;
      running -= 1;
    });
    await turn();
    expect(begun).toEqual(Array.from({ length: 16 }, (_, index) => index));
    // Finishing one out of order lets exactly the next item begin.
    gates[7]!.open();
    await turn();
    expect(begun).toHaveLength(17);
    expect(begun.at(-1)).toBe(16);
    for (const item of gates) item.open();
    await done;
    expect([...begun].sort((a, b) => a - b)).toEqual(gates.map((_, index) => index));
    expect(most).toBe(16);
  });

  it('begins nothing after a failure, lets the runs under way end, then throws the failure', async () => {
    const gates = Array.from({ length: 10 }, gate);
    const begun: number[] = [];
    const ended: number[] = [];
    const done = inTurns(gates, 3, async (item, index) => {
      begun.push(index);
      await item.promise;
      ended.push(index);
    });
    done.catch(() => undefined);
    await turn();
    gates[1]!.fail(new Error('cannot take agent 1 up'));
    await turn();
    expect(begun).toEqual([0, 1, 2]);
    let settled = false;
    void done.finally(() => (settled = true)).catch(() => undefined);
    await turn();
    expect(settled).toBe(false);
    gates[0]!.open();
    gates[2]!.open();
    await expect(done).rejects.toThrow('cannot take agent 1 up');
    expect(begun).toEqual([0, 1, 2]);
    expect(ended.sort()).toEqual([0, 2]);
  });

  it('does nothing for no items', async () => {
    await expect(
      inTurns([], 16, () => Promise.reject(new Error('never'))),
    ).resolves.toBeUndefined();
  });
});
