/** The pieces the HTTP test servers share: body reading, JSON replies, injected faults, waiters. */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Reads a request body (up to 1 MiB) as text. */
export async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > 1024 * 1024) throw new Error('request body over 1 MiB');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Sends a JSON response. */
export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (response.writableEnded || response.destroyed) return;
  const text = body === undefined ? '' : JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

/** A fault to inject into the next calls of a method or route. */
export type Fault =
  { status: number; body?: unknown; headers?: Record<string, string> } | { hang: true };

/** Per-key fault queues with a remaining count each. */
export class FaultBook {
  private readonly faults = new Map<string, Array<{ fault: Fault; remaining: number }>>();

  add(key: string, fault: Fault, times = Number.POSITIVE_INFINITY): void {
    const list = this.faults.get(key) ?? [];
    list.push({ fault, remaining: times });
    this.faults.set(key, list);
  }

  clear(key?: string): void {
    if (key === undefined) this.faults.clear();
    else this.faults.delete(key);
  }

  take(key: string): Fault | undefined {
    const list = this.faults.get(key);
    const entry = list?.[0];
    if (!list || !entry) return undefined;
    entry.remaining -= 1;
    if (entry.remaining <= 0) list.shift();
    return entry.fault;
  }
}

/** Waits until `check` returns a value (polled on every `notify()`), or rejects after `timeoutMs`. */
export class Waiters {
  private readonly pending = new Set<() => boolean>();

  wait<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const attempt = (): boolean => {
        const value = check();
        if (value === undefined) return false;
        clearTimeout(timer);
        resolve(value);
        return true;
      };
      const timer = setTimeout(() => {
        this.pending.delete(attempt);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.pending.add(attempt);
    });
  }

  notify(): void {
    for (const attempt of [...this.pending]) if (attempt()) this.pending.delete(attempt);
  }
}
