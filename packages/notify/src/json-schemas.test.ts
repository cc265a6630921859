import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ApprovalsConfigSchema } from './approval-broker.js';
import { IssuesConfigSchema } from './issue-tracker.js';
import { toNotifyJsonSchemas } from './json-schemas.js';
import { NostrConfigSchema } from './nostr-channel.js';
import { TelegramConfigSchema } from './telegram-channel.js';

describe('config schemas', () => {
  it('read the pit.toml sections as smol-toml parses them, with defaults', () => {
    expect(TelegramConfigSchema.parse({ chat_id: -1001234567890, approvers: [123456789] })).toEqual(
      {
        token_env: 'PIT_TELEGRAM_TOKEN',
        chat_id: -1001234567890,
        approvers: [123456789],
        api_root: 'https://api.telegram.org',
        poll_timeout_seconds: 30,
      },
    );
    const npub = 'npub1sg6plzptd64u62a878hep2kev88swjh3tw00gjsfl8f237lmu63q0uf63m';
    const nostr = NostrConfigSchema.parse({
      relays: ['wss://relay.example'],
      approvers: [npub],
      secret_key_file: '/etc/pit/nostr.key',
    });
    expect(nostr.approvers).toEqual([
      '82341f882b6eabcd2ba7f1ef90aad961cf074af15b9ef44a09f9d2a8fbfbe6a2',
    ]);
    expect(nostr).toMatchObject({
      secret_key_env: 'PIT_NOSTR_SECRET_KEY',
      nip04_fallback: false,
      max_reply_age_seconds: 900,
    });
    expect(
      IssuesConfigSchema.parse({
        provider: 'gitea',
        base_url: 'https://git.example/api/v1',
        owner: 'ops',
        repo: 'fleet',
      }),
    ).toMatchObject({
      token_env: 'PIT_ISSUES_TOKEN',
      labels: ['pit', 'agent-dead'],
    });
    expect(
      ApprovalsConfigSchema.parse({ tokens: [{ name: 'ops-cli', token_env: 'PIT_CLI_TOKEN' }] }),
    ).toMatchObject({ ttl_seconds: 3600, on_expiry: 'deny' });
  });

  it('fail loudly on a typo, naming every bad key', () => {
    const result = TelegramConfigSchema.safeParse({
      chat_id: 'x',
      aprovers: [1],
      token_env: 'not a name',
    });
    expect(result.success).toBe(false);
    const paths = result.error?.issues.map((issue) => issue.path.join('.') || issue.message).sort();
    expect(paths).toEqual(['chat_id', 'token_env', expect.stringContaining('aprovers')].sort());
    expect(
      NostrConfigSchema.safeParse({
        relays: ['https://not-a-relay'],
        approvers: ['npub1bad'],
      }).error?.issues.map((issue) => issue.path.join('.')),
    ).toEqual(['relays.0', 'approvers.0']);
  });
});

describe('published JSON Schemas', () => {
  it('match the zod schemas (run scripts/write-schemas.ts after a change)', async () => {
    for (const [name, schema] of Object.entries(toNotifyJsonSchemas())) {
      const file = JSON.parse(
        await readFile(new URL(`../schemas/${name}.schema.json`, import.meta.url), 'utf8'),
      ) as unknown;
      expect(file, name).toEqual(schema);
    }
  });
});
