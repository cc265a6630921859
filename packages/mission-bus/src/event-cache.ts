import type { StoredEvent } from './segment-log.js';

/**
 * The most recent events, bounded by count and by bytes of their lines, for reads and live
 * delivery without touching the disk. Holds a contiguous run of sequence numbers.
 */
export class EventCache {
  private items: StoredEvent[] = [];
  private start = 0;
  private bytes = 0;

  constructor(
    private readonly maxEvents: number,
    private readonly maxBytes: number,
  ) {}

  /** The first cached sequence number, or `undefined` when empty. */
  get firstSeq(): number | undefined {
    return this.items[this.start]?.event.seq;
  }

  /** Adds the next event (its seq must follow the last one), evicting the oldest beyond the bounds. */
  push(stored: StoredEvent): void {
    this.items.push(stored);
    this.bytes += stored.line.length;
    while (
      this.items.length - this.start > 1 &&
      (this.items.length - this.start > this.maxEvents || this.bytes > this.maxBytes)
    ) {
      this.bytes -= (this.items[this.start] as StoredEvent).line.length;
      this.items[this.start] = undefined as unknown as StoredEvent;
      this.start += 1;
    }
    if (this.start > 1024 && this.start * 2 > this.items.length) {
      this.items = this.items.slice(this.start);
      this.start = 0;
    }
  }

  /**
   * The cached events after `after`, at most `limit`; `undefined` when `after + 1` is older
   * than the cache (read the disk instead).
   */
  after(after: number, limit: number): StoredEvent[] | undefined {
    const first = this.firstSeq;
    if (first === undefined || after + 1 < first) return undefined;
    const from = this.start + (after + 1 - first);
    return this.items.slice(from, Math.min(from + limit, this.items.length));
  }

  /** The cached event with this seq, if any. */
  get(seq: number): StoredEvent | undefined {
    const first = this.firstSeq;
    if (first === undefined || seq < first) return undefined;
    return this.items[this.start + (seq - first)];
  }
}
