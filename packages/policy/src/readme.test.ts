import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { formatDuration } from './duration.js';
import { BUILTIN_POLICY } from './policy-config.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(packageDir, 'README.md'), 'utf8');

function block(language: string, index = 0): string {
  const blocks = [...readme.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))].map(
    (match) => match[1] as string,
  );
  const found = blocks[index];
  if (found === undefined) throw new Error(`README.md has no ${language} block #${index}`);
  return found;
}

describe('README.md', () => {
  let child: ChildProcess | undefined;
  let scratch: string | undefined;

  afterEach(() => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null)
      process.kill(-child.pid, 'SIGKILL');
    child = undefined;
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
    scratch = undefined;
  });

  it('shows the seed policy exactly as the fixture has it', () => {
    expect(block('toml')).toBe(
      readFileSync(join(packageDir, 'src/__fixtures__/seed-policy.toml'), 'utf8'),
    );
  });

  it('has a usage example that runs and prints what it says', async () => {
    scratch = mkdtempSync(join(tmpdir(), 'pit-policy-readme-'));
    const file = join(scratch, 'example.ts');
    writeFileSync(
      file,
      block('ts').replace(
        "from '@pit/policy'",
        `from ${JSON.stringify(join(packageDir, 'src/index.ts'))}`,
      ),
    );
    const started = spawn(process.execPath, ['--conditions=@pit/source', '--import', 'tsx', file], {
      cwd: packageDir,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    let output = '';
    started.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    started.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the example did not finish within 20 s: ${output}`)),
        20_000,
      );
      started.on('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(code, output).toBe(0);
    expect(output).toContain(
      'substitute (remote.substitute): bezalel dead for 5m (crashed: exit code 1); mode=auto (mission:forge);',
    );
    expect(output).toContain('substitute timmy (passed over allegro: dead)');
  });

  it("documents BUILTIN_POLICY's values as the built-in defaults, key by key", () => {
    const d = (ms: number) => `\`${formatDuration(ms)}\``;
    const b = BUILTIN_POLICY;
    const expected: Record<string, string> = {
      '`mode`': `\`${b.mode}\``,
      '`dead_after`': d(b.dead_after),
      '`substitutes`': `\`${JSON.stringify(b.substitutes)}\``,
      '`rollback_before_restart`': `\`${String(b.rollback_before_restart)}\``,
      '`max_revive_attempts`': `\`${b.max_revive_attempts}\``,
      '`rate_limit_wait`': d(b.rate_limit_wait),
      '`approval.channels`': `\`${JSON.stringify(b.approval.channels)}\``,
      '`approval.timeout` / `approval.on_timeout`': `${d(b.approval.timeout)} / \`${b.approval.on_timeout}\``,
      '`restart_intensity.max_restarts` / `.window`': `\`${b.restart_intensity.max_restarts}\` / ${d(b.restart_intensity.window)}`,
      '`backoff.initial` / `.factor` / `.cap` / `.jitter` / `.reset_after_stable`': [
        d(b.backoff.initial),
        `\`${b.backoff.factor}\``,
        d(b.backoff.cap),
        `\`${b.backoff.jitter}\``,
        d(b.backoff.reset_after_stable),
      ].join(' / '),
    };
    const documented: Record<string, string> = {};
    for (const line of readme.split('\n')) {
      const cells = line.split('|').map((cell) => cell.trim());
      const key = cells[1];
      if (key !== undefined && key in expected) documented[key] = cells[3] ?? '';
    }
    expect(documented).toEqual(expected);
  });
});
