import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@pit/test-kit';

const registryDir = fileURLToPath(new URL('./registry/', import.meta.url));
const verdaccioBin = join(registryDir, 'node_modules', '.bin', 'verdaccio');

/** Installs verdaccio (pinned in registry/package-lock.json) unless already present. */
export function ensureVerdaccio(): string {
  if (!existsSync(verdaccioBin)) {
    execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: registryDir,
      stdio: 'inherit',
    });
  }
  return verdaccioBin;
}

export interface RunningRegistry {
  url: string;
  token: string;
  /** A user-level npmrc that authenticates against the registry and maps @pit to it. */
  userconfig: string;
  stop(): Promise<void>;
}

/** Starts a real verdaccio on 127.0.0.1 with htpasswd auth and no uplinks, and creates a user. */
export async function startRegistry(workDir: string): Promise<RunningRegistry> {
  const bin = ensureVerdaccio();
  const port = await freePort();
  mkdirSync(join(workDir, 'storage'), { recursive: true });
  const config = join(workDir, 'config.yaml');
  writeFileSync(
    config,
    [
      `storage: ${join(workDir, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${join(workDir, 'htpasswd')}`,
      '    max_users: 10',
      'uplinks: {}',
      'packages:',
      "  '@pit/*':",
      '    access: $authenticated',
      '    publish: $authenticated',
      "  '**':",
      '    access: $authenticated',
      '    publish: $authenticated',
      'server:',
      '  keepAliveTimeout: 60',
      'logs: { type: stdout, format: pretty, level: warn }',
      `listen: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(bin, ['--config', config, '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`verdaccio exited with ${child.exitCode}:\n${output}`);
    const ok = await fetch(`${url}/-/ping`).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`verdaccio did not answer within 60 s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const response = await fetch(`${url}/-/user/org.couchdb.user:pit-ci`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'pit-ci',
      password: 'pit-ci-password-e2e',
      type: 'user',
      roles: [],
      date: new Date().toISOString(),
    }),
  });
  const body = (await response.json()) as { token?: string };
  if (!response.ok || !body.token)
    throw new Error(`could not create a registry user: ${response.status} ${JSON.stringify(body)}`);
  const userconfig = join(workDir, 'npmrc');
  const host = url.replace(/^http:/, '');
  writeFileSync(
    userconfig,
    `${host}/:_authToken=${body.token}\n@pit:registry=${url}/\nregistry=${url}/\n`,
  );
  return {
    url,
    token: body.token,
    userconfig,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
      await exited;
    },
  };
}
