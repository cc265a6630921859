/**
 * One timer for many deadlines: a binary min-heap of entries ordered by their due time and a
 * single `setTimeout` armed for the earliest. Ten thousand probes waiting cost ten thousand heap
 * slots (a pointer each), not ten thousand Node timers and closures. Owns only the ordering and
 * the one timer; what is due is the caller's business (its `fire`).
 */

/** Something the heap can hold: the heap keeps its due time and position on it. */
export interface HeapEntry {
  /** When it is due, ms on the `performance.now()` clock; `Infinity` when not in the heap. */
  dueAt: number;
  /** Its index in the heap, -1 when not in it. */
  heapIndex: number;
}

/** A set of entries, each fired once when its due time comes. */
export class TimerHeap<E extends HeapEntry> {
  private readonly heap: E[] = [];
  private timer: NodeJS.Timeout | undefined = undefined;
  private armedAt = Infinity;
  private readonly onTimer = (): void => this.run();

  constructor(private readonly fire: (entry: E) => void) {}

  /** Entries waiting. */
  get size(): number {
    return this.heap.length;
  }

  /** Schedules `entry` at `dueAt` (performance.now() ms), moving it if it was scheduled already. */
  schedule(entry: E, dueAt: number): void {
    if (entry.heapIndex >= 0) {
      const earlier = dueAt < entry.dueAt;
      entry.dueAt = dueAt;
      if (earlier) this.up(entry.heapIndex);
      else this.down(entry.heapIndex);
    } else {
      entry.dueAt = dueAt;
      entry.heapIndex = this.heap.length;
      this.heap.push(entry);
      this.up(entry.heapIndex);
    }
    this.arm();
  }

  /** Takes `entry` out of the heap (nothing if it is not in it). */
  cancel(entry: E): void {
    const index = entry.heapIndex;
    if (index < 0) return;
    const last = this.heap.pop() as E;
    if (last !== entry) {
      this.heap[index] = last;
      last.heapIndex = index;
      this.down(index);
      this.up(last.heapIndex);
    }
    entry.heapIndex = -1;
    entry.dueAt = Infinity;
  }

  /** Empties the heap and clears the timer. */
  clear(): void {
    for (const entry of this.heap) {
      entry.heapIndex = -1;
      entry.dueAt = Infinity;
    }
    this.heap.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
  }

  /** Fires every entry due by now (earliest first), then re-arms for the next. */
  private run(): void {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = performance.now();
    for (let top = this.heap[0]; top !== undefined && top.dueAt <= now; top = this.heap[0]) {
      this.cancel(top);
      this.fire(top);
    }
    this.arm();
  }

  /** Keeps the one timer armed for the earliest entry. */
  private arm(): void {
    const first = this.heap[0];
    if (first === undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.armedAt = Infinity;
      return;
    }
    if (this.timer !== undefined && this.armedAt <= first.dueAt) return;
    clearTimeout(this.timer);
    this.armedAt = first.dueAt;
    const delay = Math.min(Math.max(0, Math.ceil(first.dueAt - performance.now())), 2_147_483_647);
    this.timer = setTimeout(this.onTimer, delay);
  }

  private up(index: number): void {
    const heap = this.heap;
    const entry = heap[index] as E;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex] as E;
      if (parent.dueAt <= entry.dueAt) break;
      heap[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    heap[index] = entry;
    entry.heapIndex = index;
  }

  private down(index: number): void {
    const heap = this.heap;
    const length = heap.length;
    const entry = heap[index] as E;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child =
        right < length && (heap[right] as E).dueAt < (heap[left] as E).dueAt ? right : left;
      const next = heap[child] as E;
      if (next.dueAt >= entry.dueAt) break;
      heap[index] = next;
      next.heapIndex = index;
      index = child;
    }
    heap[index] = entry;
    entry.heapIndex = index;
  }
}
