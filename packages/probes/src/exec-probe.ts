import { spawn } from 'node:child_process';
import { z } from 'zod';
import {
  describeError,
  parseTarget,
  runProbe,
  type ProbeOptions,
  type ProbeResult,
} from './probe-result.js';

/** How long output may trail the exit of the command, ms. */
const OUTPUT_GRACE_MS = 100;

/** The command {@link execProbe} runs. */
export interface ExecTarget {
  /** The executable (looked up on PATH); no shell is involved unless you run one. */
  command: string;
  /** Its arguments. */
  args?: string[];
  /** Working directory. @default the current one */
  cwd?: string;
  /** The complete environment of the command. @default inherited from this process */
  env?: Record<string, string>;
  /** How much of its combined stdout/stderr is kept for `output`. bytes. @default 4096 */
  maxOutputBytes?: number;
}

const ExecTargetSchema = z.strictObject({
  command: z.string().min(1),
  args: z.array(z.string()).optional(),
  cwd: z.string().min(1).optional(),
  env: z.record(z.string(), z.string()).optional(),
  maxOutputBytes: z.number().int().nonnegative().optional(),
});

/** The result of {@link execProbe}. */
export interface ExecProbeResult extends ProbeResult {
  kind: 'exec';
  /** The exit code, or `null` when it ended by a signal or never ran. */
  exitCode?: number | null;
  /** The signal that ended it, if any. */
  signal?: string | null;
  /** The first `maxOutputBytes` of its combined stdout and stderr. */
  output?: string;
}

/**
 * Runs a command in its own process group: ok on exit code 0. On timeout or abort the whole
 * process group is killed (SIGKILL), so a hung check leaves nothing behind. A command that
 * cannot be started (not found, not executable) is a result with `failure: 'error'`.
 * @throws {ProbeError} PROBE_INVALID_TARGET for an empty command; PROBE_INVALID_OPTIONS.
 * @example
 * const result = await execProbe({ command: 'systemctl', args: ['is-active', 'hermes'] }, { timeoutMs: 3000 });
 */
export async function execProbe(
  target: ExecTarget,
  options?: ProbeOptions,
): Promise<ExecProbeResult> {
  const spec = parseTarget('exec', ExecTargetSchema, target);
  const commandLine = [spec.command, ...(spec.args ?? [])]
    .map((part) => (/^[\w./:=@-]+$/.test(part) ? part : JSON.stringify(part)))
    .join(' ');
  const maxOutput = spec.maxOutputBytes ?? 4096;
  return runProbe<ExecProbeResult>(
    {
      kind: 'exec',
      describe: commandLine,
      timeoutDetail: (ms) => `did not exit within ${ms} ms; its process group was killed`,
    },
    options,
    (attempt) => {
      const child = spawn(spec.command, spec.args ?? [], {
        cwd: spec.cwd,
        env: spec.env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const chunks: Buffer[] = [];
      let kept = 0;
      const keep = (chunk: Buffer): void => {
        if (kept >= maxOutput) return;
        const part = chunk.subarray(0, maxOutput - kept);
        chunks.push(part);
        kept += part.length;
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      const output = (): string => Buffer.concat(chunks).toString('utf8');
      const release = (): void => {
        // Grandchildren may still hold the pipes; do not wait for them.
        child.stdout.destroy();
        child.stderr.destroy();
      };

      attempt.signal.addEventListener(
        'abort',
        () => {
          if (
            child.exitCode === null &&
            child.signalCode === null &&
            child.pid !== undefined &&
            child.pid > 1
          ) {
            try {
              process.kill(-child.pid, 'SIGKILL');
            } catch {
              // Already gone.
            }
          }
          release();
        },
        { once: true },
      );
      child.once('error', (error) => {
        attempt.settle({
          ok: false,
          failure: 'error',
          exitCode: null,
          signal: null,
          output: output(),
          detail: `${commandLine}: could not run: ${describeError(error)}`,
        });
      });
      // Settle on 'exit', not 'close': grandchildren that keep stdout open must not delay the
      // result. Output already in flight gets a short moment to arrive.
      child.once('exit', (code, signal) => {
        const finish = (): void => {
          clearTimeout(grace);
          const text = output();
          const tail = text.trim().split('\n').at(-1)?.slice(0, 200) ?? '';
          const how = code === null ? `killed by ${signal}` : `exited with ${code}`;
          attempt.settle({
            ok: code === 0,
            ...(code === 0 ? {} : { failure: 'exit_code' as const }),
            exitCode: code,
            signal,
            output: text,
            detail: `${commandLine}: ${how}${tail ? `: ${tail}` : ''}`,
          });
        };
        const grace = setTimeout(finish, OUTPUT_GRACE_MS);
        child.once('close', finish);
      });
    },
  );
}
