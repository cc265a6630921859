import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig } from './config.js';
import { cellsRootProblem, findInlineSecrets, redactSecretPatterns } from './config-safety.js';

afterEach(cleanup);

const configOf = (toml: string) => {
  const parsed = parseConfig(toml, 'toml');
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.config;
};

describe('cellsRootProblem', () => {
  it.each([
    '/',
    '/etc',
    '/usr',
    '/usr/local/missions',
    '/proc/1',
    '/home',
    '/root',
    '/tmp',
    '/var',
    '/lib64',
  ])('refuses %s', (root) =>
    expect(cellsRootProblem(root)).toMatch(
      /is (the root|a |inside|the parent|root’s|a directory every|a kernel)/,
    ),
  );

  it.each(['/var/missions', '/srv/missions', '/home/pit/missions', '/tmp/pit-test/missions'])(
    'accepts %s',
    (root) => expect(cellsRootProblem(root)).toBeUndefined(),
  );

  it('refuses a root that resolves to / through ..', () => {
    expect(cellsRootProblem('/var/..')).toMatch(/^\/ is the root of the filesystem/);
  });
});

describe('loadConfigFile', () => {
  it('refuses cells.root = "/" with DAEMON_CONFIG_INVALID naming the file and the key', async () => {
    const dir = await tempDir();
    const path = join(dir, 'pit.toml');
    await fs.writeFile(path, '[cells]\nroot = "/"\n', { mode: 0o600 });
    await expect(loadConfigFile(path, { env: {} })).rejects.toMatchObject({
      code: 'DAEMON_CONFIG_INVALID',
      message: expect.stringContaining(`${path}: cells.root: / is the root of the filesystem`),
    });
  });
});

describe('findInlineSecrets', () => {
  it('leaves ordinary env and argv alone', () => {
    const config = configOf(
      [
        '[agents.forge]',
        'argv = ["node", "agent.js", "--verbose", "--url=https://example.org/x", "--token-file", "/run/secrets/t"]',
        'env = { LOG_LEVEL = "debug", GIT_AUTHOR_NAME = "Forge", HOME_URL = "https://user@example.org/", KEY_ID = "" }',
      ].join('\n'),
    );
    expect(findInlineSecrets(config)).toEqual([]);
  });
});

describe('redactSecretPatterns', () => {
  it('redacts flag values and URL passwords, and nothing else', () => {
    expect(
      redactSecretPatterns(
        'node a.js --api-token=abc123 --client-secret=s3 --name=forge postgres://admin:pw@db/app https://user@host/',
      ),
    ).toBe(
      'node a.js --api-token=[redacted] --client-secret=[redacted] --name=forge postgres://admin:[redacted]@db/app https://user@host/',
    );
  });
});
