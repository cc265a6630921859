import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { provisionCell } from '@pit/cell-spec';
import WebSocket from 'ws';
import type { BusEvent } from '../src/bus-event.js';
import { createToken } from '../src/tokens.js';

/** A temporary cells root, removed by `cleanup`. */
export async function tempRoot(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'pit-bus-'));
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** Provisions a real cell under `root`. */
export async function makeCell(
  root: string,
  agents: string[] = ['lead1', 'writer', 'reader', 'auditor'],
): Promise<string> {
  const { dir } = await provisionCell(root, {
    mission: 'Port the parser',
    created_by: 'test',
    agents: agents.map((name) => ({ name, role: 'agent' })),
  });
  return dir;
}

/** One participant per role, with tokens. */
export function roleParticipants() {
  const people = {
    lead1: { role: 'lead' as const, ...createToken() },
    writer: { role: 'write' as const, ...createToken() },
    reader: { role: 'read' as const, ...createToken() },
    auditor: { role: 'audit' as const, ...createToken() },
  };
  const participants = Object.entries(people).map(([name, person]) => ({
    name,
    role: person.role,
    token_sha256: person.sha256,
  }));
  return { people, participants };
}

/** The events an `event` or `events` frame carries (none for other frames). */
export function eventsOf(frame: Record<string, unknown>): BusEvent[] {
  if (frame.type === 'event') return [frame.event as BusEvent];
  if (frame.type === 'events') return frame.events as BusEvent[];
  return [];
}

/** A raw ws client that collects every frame it receives. */
export class RawClient {
  readonly frames: Array<Record<string, unknown>> = [];
  closeCode: number | undefined;
  closeReason = '';
  readonly closed: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as Record<string, unknown>);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        for (const wake of this.waiters.splice(0)) wake();
        resolve();
      });
    });
    ws.on('error', () => undefined);
  }

  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<RawClient> {
    const ws = new WebSocket(url, options);
    const client = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Waits (bounded) for a frame matching `match`, returning it. */
  async next(
    match: (frame: Record<string, unknown>) => boolean,
    timeoutMs = 10_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    for (;;) {
      for (; seen < this.frames.length; seen += 1) {
        const frame = this.frames[seen] as Record<string, unknown>;
        if (match(frame)) return frame;
      }
      if (this.closeCode !== undefined)
        throw new Error(
          `closed (${this.closeCode} ${this.closeReason}) before a matching frame; got ${JSON.stringify(this.frames.slice(-3))}`,
        );
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-3))}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends a request and waits for the answer with the same ref. */
  async request(
    frame: Record<string, unknown> & { ref: number },
    timeoutMs = 10_000,
  ): Promise<Record<string, unknown>> {
    this.send(frame);
    return this.next((answer) => answer.ref === frame.ref, timeoutMs);
  }

  async hello(
    mission: string,
    participant: string,
    token: string,
  ): Promise<Record<string, unknown>> {
    this.send({ op: 'hello', v: 1, ref: 0, mission, participant, token });
    return this.next(
      (frame) => frame.type === 'welcome' || (frame.type === 'error' && frame.ref === 0),
    );
  }

  close(): void {
    this.ws.terminate();
  }
}
