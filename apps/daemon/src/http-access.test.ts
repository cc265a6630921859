import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { PitError } from '@pit/cell-spec';
import { parseConfig } from './config.js';
import { runDaemon } from './daemon.js';
import {
  assertListenAllowed,
  httpCredentials,
  httpWarnings,
  isLoopbackHost,
  MIN_TOKEN_LENGTH,
} from './http-access.js';

afterEach(cleanup);

const LONG = 'a'.repeat(MIN_TOKEN_LENGTH);
const httpOf = (toml: string) => {
  const parsed = parseConfig(toml, 'toml');
  if (!parsed.ok) throw new Error(parsed.problems.map((problem) => problem.message).join('\n'));
  return parsed.config.daemon.http;
};

describe('a non-loopback listen', () => {
  it('is refused by the config without allow_remote, saying why it is dangerous', () => {
    const parsed = parseConfig('[daemon.http]\nlisten = "0.0.0.0:7420"\n', 'toml');
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.problems).toEqual([
      expect.objectContaining({
        path: 'daemon.http.listen',
        line: 2,
        message: expect.stringMatching(/not a loopback address.*allow_remote = true/s),
      }),
    ]);
    expect(parsed.problems[0]!.message).toContain('no TLS');
    expect(() => assertListenAllowed('10.1.2.3:7420', false)).toThrow(/allow_remote/);
  });

  it('is accepted with allow_remote = true, with a warning', () => {
    const http = httpOf('[daemon.http]\nlisten = "0.0.0.0:7420"\nallow_remote = true\n');
    expect(httpWarnings(http)).toEqual([expect.stringContaining('TLS proxy')]);
    expect(() => assertListenAllowed('0.0.0.0:7420', true)).not.toThrow();
  });

  it('knows loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.9.9.9', 'localhost', '::1', '[::1]'])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.org', '::ffff:10.0.0.1'])
      expect(isLoopbackHost(host), host).toBe(false);
    expect(httpWarnings(httpOf('[daemon.http]\nlisten = "127.0.0.1:7420"\n'))).toEqual([]);
  });
});

describe('httpCredentials', () => {
  const http = httpOf(
    [
      '[daemon.http]',
      'token_env = "PIT_TOKEN"',
      '[daemon.http.approvers.alice]',
      'token_env = "ALICE_TOKEN"',
      '[daemon.http.approvers.bob]',
      'token_env = "BOB_TOKEN"',
    ].join('\n'),
  );

  it('gives the operator and each approver whose variable is set their identity', () => {
    expect(httpCredentials(http, { PIT_TOKEN: LONG, ALICE_TOKEN: `${LONG}b` })).toEqual([
      { identity: 'operator', token: LONG },
      { identity: 'alice', token: `${LONG}b` },
    ]);
  });

  it('refuses a token shorter than 32 characters, naming its variable', () => {
    expect(() => httpCredentials(http, { PIT_TOKEN: LONG, BOB_TOKEN: 'short' })).toThrow(
      /BOB_TOKEN \(the HTTP token of bob\): must be at least 32 characters \(it has 5\)/,
    );
  });

  it('refuses one token shared by two identities', () => {
    expect(() => httpCredentials(http, { PIT_TOKEN: LONG, ALICE_TOKEN: LONG })).toThrow(
      /ALICE_TOKEN .* same token as operator's/,
    );
  });

  it('refuses an approver called operator', () => {
    const parsed = parseConfig('[daemon.http.approvers.operator]\ntoken_env = "X"\n', 'toml');
    expect(parsed.ok).toBe(false);
  });
});

describe('the daemon with a short HTTP token', () => {
  it('refuses to start, naming the variable', async () => {
    const dir = await tempDir('pit-http-access-');
    const config = join(dir, 'pit.toml');
    await fs.writeFile(
      config,
      [
        '[daemon]',
        'state_dir = "state"',
        '[daemon.http]',
        'token_env = "PIT_SHORT_TOKEN"',
        '[cells]',
        'root = "missions"',
        '[bus]',
        'enabled = false',
      ].join('\n'),
      { mode: 0o600 },
    );
    const started = runDaemon({
      configPath: config,
      env: { PIT_SHORT_TOKEN: 'twenty-characters-xx' },
      cwd: dir,
      listen: '127.0.0.1:0',
      handleSignals: false,
      log: { stream: { write: () => true }, format: 'json' },
    });
    const error = await started.then(
      async (daemon) => {
        await daemon.stop();
        return undefined;
      },
      (error: unknown) => error,
    );
    expect(PitError.is(error) && error.code).toBe('DAEMON_CONFIG_INVALID');
    expect((error as Error).message).toMatch(/PIT_SHORT_TOKEN .*at least 32 characters/);
  });
});
