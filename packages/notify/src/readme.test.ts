import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ApprovalsConfigSchema } from './approval-broker.js';
import { IssuesConfigSchema } from './issue-tracker.js';
import { NostrConfigSchema } from './nostr-channel.js';
import { TelegramConfigSchema } from './telegram-channel.js';

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

/** Reads the README's TOML example: tables of `key = value` lines whose values are JSON (or an inline table of them). */
function readmeTomlSections(): Record<string, Record<string, unknown>> {
  const sections: Record<string, Record<string, unknown>> = {};
  let current: Record<string, unknown> | undefined;
  for (const raw of block('toml').split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      current = sections[header[1] as string] = {};
      continue;
    }
    const [key, ...rest] = line.split(' = ');
    const value = rest
      .join(' = ')
      .replace(/\{ (\w+) = ("[^"]*"), (\w+) = ("[^"]*") \}/g, '{ "$1": $2, "$3": $4 }');
    if (current && key)
      current[key] = JSON.parse(
        value.replace(
          /"npub1…"/,
          '"82341f882b6eabcd2ba7f1ef90aad961cf074af15b9ef44a09f9d2a8fbfbe6a2"',
        ),
      );
  }
  return sections;
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

  it('has a usage example that runs and prints what it says', async () => {
    scratch = mkdtempSync(join(tmpdir(), 'pit-notify-readme-'));
    const file = join(scratch, 'example.mts');
    writeFileSync(
      file,
      block('ts').replace(
        "from '@pit/notify'",
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
        () => reject(new Error(`the example did not finish within 30 s: ${output}`)),
        30_000,
      );
      started.on('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(code, output).toBe(0);
    expect(output).toBe(block('text'));
  });

  it('shows configuration examples that the schemas accept', () => {
    const sections = readmeTomlSections();
    expect(Object.keys(sections)).toEqual(['telegram', 'nostr', 'issues', 'approvals']);
    expect(TelegramConfigSchema.safeParse(sections.telegram).error).toBeUndefined();
    expect(NostrConfigSchema.safeParse(sections.nostr).error).toBeUndefined();
    expect(IssuesConfigSchema.safeParse(sections.issues).error).toBeUndefined();
    expect(ApprovalsConfigSchema.safeParse(sections.approvals).error).toBeUndefined();
  });
});
