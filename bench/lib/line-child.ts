/** A child process spoken to in JSON lines (bench/lib/heartbeat-fleet.ts, bench/lib/gateway-fleet.ts). */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { TSX_LOADER } from './pit.js';
import { reapLater, stopChild } from './proc.js';

/** A TypeScript child run with the workspace's source condition, one JSON line per answer. */
export interface LineChild {
  child: ChildProcess;
  /** The next line it prints, parsed (within `timeoutMs`). */
  next<T = Record<string, unknown>>(timeoutMs?: number): Promise<T>;
  /** Sends one command and waits for its answer; rejects on `{ ok: false }`. */
  call<T = Record<string, unknown>>(command: object, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

/** Starts `node --conditions=@pit/source --import tsx <file> ...args` in its own process group. */
export function startLineChild(
  file: string,
  args: string[] = [],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): LineChild {
  const child = spawn(
    process.execPath,
    ['--conditions=@pit/source', '--import', TSX_LOADER, file, ...args],
    {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  reapLater(child.pid);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async <T>(timeoutMs = 600_000): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const line = await Promise.race([
      lines.next(),
      new Promise<never>(
        (_, reject) =>
          (timer = setTimeout(
            () => reject(new Error(`${file}: no answer within ${timeoutMs} ms`)),
            timeoutMs,
          )),
      ),
    ]).finally(() => clearTimeout(timer));
    if (line.done) throw new Error(`${file}: exited (code ${child.exitCode ?? child.signalCode})`);
    return JSON.parse(String(line.value)) as T;
  };
  return {
    child,
    next,
    async call<T>(command: object, timeoutMs?: number) {
      child.stdin!.write(`${JSON.stringify(command)}\n`);
      const answer = await next<T & { ok?: boolean; error?: string }>(timeoutMs);
      if (answer.ok === false) throw new Error(`${file}: ${answer.error ?? 'failed'}`);
      return answer;
    },
    async stop() {
      child.stdin!.end();
      await stopChild(child, 5000);
    },
  };
}
