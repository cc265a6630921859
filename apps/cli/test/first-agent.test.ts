/**
 * The README's "Supervise your first agent", run as written: the example's pit.toml is the one
 * the README shows, the commands are read from the README's code block, and the two agents
 * (Python and shell, no dependencies) run under a real daemon, become healthy, and one killed
 * with SIGKILL comes back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { reapLater, waitFor } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const example = join(repo, 'examples', 'first-agent');
const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const readme = readFileSync(join(repo, 'README.md'), 'utf8');
const section = readme.slice(
  readme.indexOf('## Supervise your first agent'),
  readme.indexOf('\n## ', readme.indexOf('## Supervise your first agent') + 1),
);

/** The code blocks of the section, in order, for one language. */
function blocks(language: string): string[] {
  return [...section.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))].map(
    (match) => match[1] as string,
  );
}

/** The `pit …` lines of a shell block, comments dropped, split into words ("…" kept whole). */
function pitCommands(block: string): string[][] {
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line.startsWith('pit '))
    .map((line) =>
      [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((match) => match[1] ?? (match[2] as string)),
    )
    .map((words) => words.slice(1));
}

interface AgentRow {
  agent: string;
  health: string;
  pid?: number;
}

let base: string | undefined;
let daemon: ChildProcess | undefined;
const agentPids = new Set<number>();

afterEach(async () => {
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    const exited = new Promise((resolve) => daemon!.once('exit', resolve));
    daemon.kill('SIGKILL');
    await exited;
  }
  daemon = undefined;
  for (const pid of agentPids) reapLater(pid);
  agentPids.clear();
  if (base) rmSync(base, { recursive: true, force: true });
  base = undefined;
});

describe('README: Supervise your first agent', () => {
  it('shows the example pit.toml exactly as the file has it', () => {
    expect(blocks('toml')[0]).toBe(readFileSync(join(example, 'pit.toml'), 'utf8'));
  });

  it('runs the Python and the shell agent under a real daemon, healthy, and brings a killed one back', async () => {
    // A copy of the example, so that its state and cells stay out of the repository.
    base = mkdtempSync(join(tmpdir(), 'pit-first-agent-'));
    cpSync(example, base, { recursive: true });
    // The mission bus on a free port too (7421 may be taken where tests run: another daemon, or
    // another test file's, in parallel), as `--listen` does for HTTP below.
    appendFileSync(join(base, 'pit.toml'), '\n[bus]\nlisten = "127.0.0.1:0"\n');
    const env = { PIT_CONFIG: join(base, 'pit.toml') };
    const [setup, daily] = blocks('sh').map(pitCommands);
    expect(setup?.map((words) => words[0])).toEqual(['cell', 'daemon']);
    const created = await pit(setup![0]!, { env });
    expect(created.code, created.stderr).toBe(0);

    // `pit daemon` as written, on a free port (7420 may be taken where tests run).
    daemon = spawn(
      process.execPath,
      [
        '--conditions=@pit/source',
        '--import',
        'tsx',
        bin,
        ...setup![1]!,
        '--listen',
        '127.0.0.1:0',
        '--log-level',
        'warn',
      ],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let daemonErr = '';
    daemon.stderr?.on('data', (chunk: Buffer) => (daemonErr += chunk.toString()));

    const rows = async () => {
      const status = await pit(['status', '--json'], { env });
      return (JSON.parse(status.stdout || '{"agents":[]}') as { agents: AgentRow[] }).agents;
    };
    const healthy = (name: string, not?: number) => async () => {
      const row = (await rows()).find((agent) => agent.agent === name);
      return row?.health === 'healthy' && row.pid && row.pid !== not ? row.pid : undefined;
    };
    const failWith = (error: Error) => {
      throw new Error(`${error.message}\ndaemon:\n${daemonErr}`);
    };
    const scribe = await waitFor(healthy('scribe'), 30_000, 'scribe (Python) healthy').catch(
      failWith,
    );
    const tender = await waitFor(healthy('tender'), 30_000, 'tender (shell) healthy').catch(
      failWith,
    );
    agentPids.add(scribe).add(tender);

    // The five daily commands, as the README lists them.
    expect(daily?.map((words) => words[0])).toEqual([
      'status',
      'why',
      'approvals',
      'cells',
      'config',
    ]);
    for (const command of daily!) {
      const result = await pit(command, { env });
      expect(result.code, `pit ${command.join(' ')}: ${result.stderr}`).toBe(0);
    }

    process.kill(scribe, 'SIGKILL');
    const back = await waitFor(
      healthy('scribe', scribe),
      30_000,
      'scribe back after SIGKILL',
    ).catch(failWith);
    agentPids.add(back);
    const why = await pit(['why', 'scribe'], { env });
    expect(why.stdout).toContain('SIGKILL');
  }, 150_000);
});
