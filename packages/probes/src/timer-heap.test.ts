import { describe, expect, it } from 'vitest';
import { TimerHeap, type HeapEntry } from './timer-heap.js';

interface Named extends HeapEntry {
  name: string;
}

const entry = (name: string): Named => ({ name, dueAt: Infinity, heapIndex: -1 });

describe('TimerHeap', () => {
  it('fires entries in due order, moved and cancelled ones included, from one timer', async () => {
    const fired: string[] = [];
    let done: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const heap = new TimerHeap<Named>((fired_) => {
      fired.push(fired_.name);
      if (fired.length === 4) done();
    });
    const at = performance.now();
    const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map(entry) as [
      Named,
      Named,
      Named,
      Named,
      Named,
    ];
    heap.schedule(a, at + 40);
    heap.schedule(b, at + 10);
    heap.schedule(c, at + 30);
    heap.schedule(d, at + 20);
    heap.schedule(e, at + 25);
    heap.schedule(a, at + 5); // moved earlier
    heap.schedule(b, at + 50); // moved later
    heap.cancel(e);
    expect(heap.size).toBe(4);
    await finished;
    expect(fired).toEqual(['a', 'd', 'c', 'b']);
    expect(heap.size).toBe(0);
    expect([a, b, c, d, e].every((item) => item.heapIndex === -1)).toBe(true);
  });

  it('fires nothing after clear', async () => {
    const fired: string[] = [];
    const heap = new TimerHeap<Named>((item) => fired.push(item.name));
    heap.schedule(entry('x'), performance.now() + 1);
    heap.clear();
    const probe = entry('probe');
    const later = new Promise<void>((resolve) => {
      const other = new TimerHeap<Named>(() => resolve());
      other.schedule(probe, performance.now() + 20);
    });
    await later;
    expect(fired).toEqual([]);
  });
});
