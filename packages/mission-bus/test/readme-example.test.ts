import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { tempRoot } from './helpers.js';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const children: ChildProcess[] = [];

function run(script: string, args: string[]): ChildProcess {
  const child = spawn(
    process.execPath,
    ['--conditions=@pit/source', '--import', 'tsx', script, ...args],
    { cwd: PACKAGE_DIR, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  return child;
}

function output(child: ChildProcess): { text: () => string } {
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { text: () => text };
}

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      process.kill(-(child.pid as number), 'SIGKILL');
      await exited;
    }
  }
});

describe('the README’s two-process example', () => {
  it('runs: a server process and a client process that hands work off', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const server = run('examples/bus-server.ts', [root, '0']);
      const serverOutput = output(server);
      const details = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`server not ready: ${serverOutput.text()}`)),
          20_000,
        );
        server.stdout?.on('data', () => {
          const match = /connection details in (\S+)/.exec(serverOutput.text());
          if (match) {
            clearTimeout(timer);
            resolve(match[1] as string);
          }
        });
      });
      const client = run('examples/bus-client.ts', [details]);
      const clientOutput = output(client);
      const [code] = (await once(client, 'exit')) as [number];
      expect({ code, output: clientOutput.text() }).toMatchObject({ code: 0 });
      expect(clientOutput.text()).toContain('acknowledged: plan #1, checkpoint #2, handoff #3');
      expect(clientOutput.text()).toContain(
        'smith resumes "lexer done" from forge: the parser is yours (stream length 3)',
      );
      expect(clientOutput.text()).toMatch(/#3 handoff from forge/);
      const exited = once(server, 'exit');
      process.kill(-(server.pid as number), 'SIGTERM');
      expect((await exited)[0]).toBe(0);
    } finally {
      await cleanup();
    }
  }, 60_000);
});
