/**
 * Converts the first `resurrection_pool.json` (seed 001's resurrection_pool.py: `poll_interval`,
 * `dead_threshold`, `approval_timeout`, `gateways`, `missions` with `revive_policy`,
 * `telegram`, `nostr`, `gitea`) into pit.toml settings. Owns that mapping only.
 */
import {
  AGENT_NAME,
  asRecord,
  giteaIssues,
  ImportBuilder,
  isSeconds,
  secondsDuration,
  type ImportedConfig,
} from './imported-config.js';

const PUBLIC_KEY = /^(npub1[02-9ac-hj-np-z]{58}|[0-9a-f]{64})$/;

/** Converts a parsed `resurrection_pool.json` of the first shape. */
export function convertResurrectionPoolV1(document: Record<string, unknown>): ImportedConfig {
  const builder = new ImportBuilder();
  for (const [key, value] of Object.entries(document)) {
    if (key === 'poll_interval' && isSeconds(value) && value > 0)
      builder.set({ table: ['cells'], key: 'poll_interval_s', value, from: key });
    else if (key === 'dead_threshold' && isSeconds(value))
      builder.set({
        table: ['policy', 'defaults'],
        key: 'dead_after',
        value: secondsDuration(value),
        from: key,
        note: 'seconds',
      });
    else if (key === 'approval_timeout' && isSeconds(value) && value > 0)
      builder.set({
        table: ['policy', 'defaults', 'approval'],
        key: 'timeout',
        value: secondsDuration(value),
        from: key,
        note: 'seconds',
      });
    else if (key === 'gateways' && Array.isArray(value)) convertGateways(builder, value);
    else if (key === 'missions') convertMissions(builder, asRecord(value));
    else if (key === 'telegram') convertTelegram(builder, asRecord(value));
    else if (key === 'nostr') convertNostr(builder, asRecord(value));
    else if (key === 'gitea') {
      const gitea = asRecord(value);
      giteaIssues(builder, { url: gitea.url, repo: gitea.repo, section: 'gitea' });
      if (gitea.token !== undefined)
        builder.skipSecret(
          'gitea.token',
          "set GITEA_TOKEN in the daemon's environment ([issues] token_env)",
        );
    } else builder.skip(key, value, 'no equivalent in pit.toml');
  }
  return builder.build("resurrection_pool.json, the first pool's config (seed 001)");
}

function convertGateways(builder: ImportBuilder, gateways: unknown[]): void {
  gateways.forEach((entry, index) => {
    const gateway = asRecord(entry);
    const name = gateway.name;
    if (typeof name !== 'string' || !AGENT_NAME.test(name)) {
      builder.skip(
        `gateways.${index}`,
        entry,
        'needs a name matching ^[a-z0-9][a-z0-9._-]{0,63}$ to become [agents.<name>]',
      );
      return;
    }
    const table = ['agents', name];
    const from = (key: string) => `gateways.${index} (${name}) ${key}`;
    const revive = gateway.revive_cmd;
    if (
      Array.isArray(revive) &&
      revive.length > 0 &&
      revive.every((arg) => typeof arg === 'string' && arg !== '')
    )
      builder.set({ table, key: 'argv', value: revive as string[], from: from('revive_cmd') });
    else
      builder.skip(
        from('revive_cmd'),
        revive,
        'none given: the Pit can watch this agent but not start it until [agents.<name>] argv is set',
      );
    const host = typeof gateway.host === 'string' ? gateway.host : 'localhost';
    const port = typeof gateway.port === 'number' ? gateway.port : 8765;
    builder.set({
      table: [...table, 'probes'],
      key: 'tcp',
      value: `${host === 'localhost' ? '127.0.0.1' : host}:${port}`,
      from: from('host, port'),
      note: 'the pool TCP-probed the gateway',
    });
    if (typeof gateway.process_pattern === 'string' && gateway.process_pattern !== '')
      builder.set({
        table: [...table, 'probes'],
        key: 'process',
        value: gateway.process_pattern,
        from: from('process_pattern'),
      });
    if (gateway.heartbeat_path !== undefined)
      builder.skip(
        from('heartbeat_path'),
        gateway.heartbeat_path,
        "the Pit reads an agent's heartbeat from its cell (.lazarus/heartbeats/<agent>.json); an agent started by the Pit is told where",
      );
    for (const key of Object.keys(gateway))
      if (
        !['name', 'revive_cmd', 'host', 'port', 'process_pattern', 'heartbeat_path'].includes(key)
      )
        builder.skip(from(key), gateway[key], 'no equivalent in [agents.<name>]');
  });
}

function convertMissions(builder: ImportBuilder, missions: Record<string, unknown>): void {
  for (const [id, entry] of Object.entries(missions)) {
    const mission = asRecord(entry);
    const from = (key: string) => `missions.${id}.${key}`;
    if (typeof mission.revive_policy === 'string')
      builder.set({
        table: ['policy', 'missions', id],
        key: 'mode',
        value: mission.revive_policy,
        from: from('revive_policy'),
      });
    if (Array.isArray(mission.agents))
      for (const agent of mission.agents) {
        if (typeof agent === 'string' && AGENT_NAME.test(agent))
          builder.set({
            table: ['policy', 'agents', agent],
            key: 'mission',
            value: id,
            from: from('agents'),
          });
        else builder.skip(from('agents'), agent, 'not an agent name');
      }
    if (mission.label !== undefined)
      builder.skip(
        from('label'),
        mission.label,
        "a mission's name is its key; a cell's human-readable name is cell.json's name",
      );
    for (const key of Object.keys(mission))
      if (!['revive_policy', 'agents', 'label'].includes(key))
        builder.skip(from(key), mission[key], 'no equivalent in [policy.missions.<name>]');
  }
}

function convertTelegram(builder: ImportBuilder, telegram: Record<string, unknown>): void {
  const chat = typeof telegram.chat_id === 'string' ? Number(telegram.chat_id) : telegram.chat_id;
  if (typeof chat === 'number' && Number.isInteger(chat)) {
    builder.set({ table: ['telegram'], key: 'chat_id', value: chat, from: 'telegram.chat_id' });
    builder.set({
      table: ['telegram'],
      key: 'token_env',
      value: 'TELEGRAM_BOT_TOKEN',
      from: 'telegram.bot_token',
      note: 'the variable the first pool read; a token is never written in pit.toml',
    });
  } else if (telegram.chat_id !== undefined)
    builder.skip('telegram.chat_id', telegram.chat_id, 'must be a numeric chat id');
  if (telegram.bot_token !== undefined)
    builder.skipSecret(
      'telegram.bot_token',
      "set TELEGRAM_BOT_TOKEN in the daemon's environment ([telegram] token_env)",
    );
  for (const key of Object.keys(telegram))
    if (key !== 'chat_id' && key !== 'bot_token')
      builder.skip(`telegram.${key}`, telegram[key], 'no equivalent in [telegram]');
}

function convertNostr(builder: ImportBuilder, nostr: Record<string, unknown>): void {
  const relay = nostr.relay_url;
  const recipient = nostr.recipient_pubkey;
  if (typeof relay === 'string' && /^wss?:\/\/./.test(relay)) {
    builder.set({ table: ['nostr'], key: 'relays', value: [relay], from: 'nostr.relay_url' });
    if (typeof recipient === 'string' && PUBLIC_KEY.test(recipient))
      builder.set({
        table: ['nostr'],
        key: 'approvers',
        value: [recipient],
        from: 'nostr.recipient_pubkey',
      });
    else if (recipient !== undefined)
      builder.skip(
        'nostr.recipient_pubkey',
        recipient,
        'not a public key (npub or 64 hex characters): add it to [nostr] approvers',
      );
  } else if (relay !== undefined) builder.skip('nostr.relay_url', relay, 'must be a ws(s):// URL');
  for (const key of Object.keys(nostr))
    if (key !== 'relay_url' && key !== 'recipient_pubkey')
      builder.skip(`nostr.${key}`, nostr[key], 'no equivalent in [nostr]');
}
