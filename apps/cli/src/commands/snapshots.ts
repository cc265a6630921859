import { mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { appendEvent, assertAgentName, cellPaths, discoverCells } from '@pit/cell-spec';
import {
  createCheckpoint,
  createSnapshotStore,
  listCheckpoints,
  restoreCheckpoint,
  type CanonicalSource,
} from '@pit/snapshot';
import { checkpointStore, type AgentConfig } from '@pit/daemon';
import { control } from './controls.js';
import { resolveCellUuid } from '../cell-ref.js';
import { RefusedError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import type { CommandContext } from '../context.js';
import { renderTable } from '../output.js';

/** The directory an agent's relative config paths are relative to, and the events log its story goes to. */
async function agentHome(
  context: CommandContext,
  agent: string,
  agentConfig: AgentConfig | undefined,
): Promise<{ base: string; events: string }> {
  const { config } = await context.config();
  if (agentConfig?.cell && agentConfig.cell !== 'none') {
    const dir = join(await context.cellsRoot(), agentConfig.cell);
    return { base: dir, events: cellPaths(dir).events };
  }
  if (agentConfig?.cell === 'none')
    return {
      base: agentConfig.cwd ?? config.daemon.state_dir,
      events: join(config.daemon.state_dir, 'logs', 'events.jsonl'),
    };
  const discovery = await discoverCells(await context.cellsRoot());
  const cell = discovery.supervised.find((candidate) =>
    candidate.manifest.agents.some((member) => member.name === agent),
  );
  if (cell) return { base: cell.dir, events: cellPaths(cell.dir).events };
  return {
    base: config.daemon.state_dir,
    events: join(config.daemon.state_dir, 'logs', 'events.jsonl'),
  };
}

/** The canonical git source of an agent's config files, as the daemon derives it. */
function canonicalOf(
  agentConfig: AgentConfig | undefined,
  base: string,
): CanonicalSource | undefined {
  const files = (agentConfig?.config_files ?? []).filter((file) => file.canonical);
  const first = files[0]?.canonical;
  if (!first) return undefined;
  return {
    repository: first.repo,
    ref: first.ref,
    files: files
      .filter((file) => file.canonical!.repo === first.repo && file.canonical!.ref === first.ref)
      .map((file) => ({
        path: file.canonical!.path,
        target: isAbsolute(file.path) ? file.path : resolve(base, file.path),
      })),
  };
}

/** `pit snapshot list AGENT [--json]`: the agent's retained last-known-good sets, newest first. */
export async function listSnapshots(
  context: CommandContext,
  agent: string,
  options: { json?: boolean },
): Promise<number> {
  assertAgentName(agent, 'AGENT');
  const { config } = await context.config();
  const store = createSnapshotStore({ stateDir: config.daemon.state_dir });
  const history = await store.history(agent);
  if (options.json) {
    context.output.out(JSON.stringify({ agent, store: store.paths(agent).dir, history }, null, 2));
    return EXIT.ok;
  }
  if (history.length === 0) {
    context.output.out(
      `${agent}: no snapshot yet (one is taken on the first healthy check of an agent with config_files); store: ${store.paths(agent).dir}`,
    );
    return EXIT.ok;
  }
  context.output.out(
    renderTable(
      ['SET', 'SAVED', 'FILES', 'CURRENT'],
      history.map((entry) => [
        entry.set.slice(0, 16),
        entry.at,
        entry.files ?? `unreadable: ${entry.problem ?? ''}`,
        entry.current ? 'last known good' : '',
      ]),
    ),
  );
  return EXIT.ok;
}

/** `pit rollback AGENT [--to SET] [--reason R]`: restores the agent's config to last known good (or a retained set), logging the hashes. */
export async function rollback(
  context: CommandContext,
  agent: string,
  options: { to?: string; reason?: string; json?: boolean; restart?: boolean },
): Promise<number> {
  assertAgentName(agent, 'AGENT');
  const { config } = await context.config();
  const agentConfig = config.agents[agent];
  const home = await agentHome(context, agent, agentConfig);
  const store = createSnapshotStore({ stateDir: config.daemon.state_dir });
  let to = options.to;
  if (to && to.length < 64) {
    const matches = (await store.history(agent)).filter((entry) => entry.set.startsWith(to!));
    if (matches.length !== 1)
      throw new RefusedError(
        `--to ${to}: ${matches.length === 0 ? 'no retained set starts with it' : 'ambiguous, give more characters'} (see \`pit snapshot list ${agent}\`)`,
      );
    to = matches[0]!.set;
  }
  const canonical = canonicalOf(agentConfig, home.base);
  const reason = options.reason ?? `manual rollback by ${context.actor} (pit rollback)`;
  await mkdir(dirname(home.events), { recursive: true }); // the log must be writable before anything is changed
  const result = await store.rollback(agent, {
    reason,
    ...(to ? { to } : {}),
    ...(canonical ? { canonical } : {}),
  });
  if (result.status === 'rolled_back') {
    await appendEvent(home.events, {
      event: 'config_rolled_back',
      agent,
      files: result.files,
      reason,
      source: result.source,
      ...(result.set ? { set: result.set } : {}),
    });
  }
  if (options.json) context.output.out(JSON.stringify(result, null, 2));
  else if (result.status === 'unchanged')
    context.output.out(
      `${agent}: config already is ${result.source === 'git' ? 'the canonical version' : 'last known good'}; nothing written`,
    );
  else {
    context.output.out(
      `${agent}: config rolled back from ${result.source === 'git' ? 'git' : `set ${result.set?.slice(0, 16)}`}`,
    );
    for (const file of result.files)
      context.output.out(
        `  ${file.path}  ${file.old_sha256?.slice(0, 12) ?? '(absent)'} → ${file.new_sha256.slice(0, 12)}`,
      );
    if (!options.restart)
      context.output.out(
        `restart the agent to use it: \`pit restart ${agent}\` (or roll back with --restart; the daemon does this itself when it revives an agent)`,
      );
  }
  // The same path as `pit restart`: through the running daemon, or recorded for the next sweep.
  if (options.restart) return control(context, 'restart', agent, { reason, json: options.json });
  return EXIT.ok;
}

/** The cell CELL names (a uuid or a unique prefix of one): its uuid and directory. */
async function cellOf(
  context: CommandContext,
  ref: string,
): Promise<{ uuid: string; dir: string }> {
  const root = await context.cellsRoot();
  const uuid = await resolveCellUuid(root, ref, 'CELL');
  return { uuid, dir: join(root, uuid) };
}

/** `pit checkpoint create|list|restore CELL`: workspace checkpoints of a cell. */
export async function checkpoint(
  context: CommandContext,
  action: 'create' | 'list' | 'restore',
  ref: string,
  options: { name?: string; reason?: string; json?: boolean },
): Promise<number> {
  const { uuid, dir } = await cellOf(context, ref);
  // The daemon's store for the cell (never the cell's own checkpoints/, which its agents can write).
  const { config } = await context.config();
  const store = checkpointStore(config.daemon.state_dir, uuid);
  if (action === 'create') {
    const created = await createCheckpoint(dir, {
      store,
      createdBy: context.actor,
      reason: options.reason ?? 'manual (pit checkpoint create)',
    });
    if (options.json) context.output.out(JSON.stringify(created, null, 2));
    else
      context.output.out(
        `checkpoint ${created.name}: ${created.manifest.files} files, ${created.manifest.bytes} bytes, sha256 ${created.manifest.sha256.slice(0, 16)}`,
      );
    return EXIT.ok;
  }
  if (action === 'list') {
    const list = await listCheckpoints(dir, { store });
    if (options.json) context.output.out(JSON.stringify(list, null, 2));
    else if (list.checkpoints.length === 0) context.output.out(`cell ${uuid}: no checkpoints`);
    else
      context.output.out(
        renderTable(
          ['NAME', 'FILES', 'BYTES', 'BY', 'REASON'],
          list.checkpoints.map((item) => [
            item.name,
            item.manifest.files,
            item.manifest.bytes,
            item.manifest.created_by,
            item.manifest.reason,
          ]),
        ),
      );
    for (const problem of list.problems) context.output.err(`problem: ${JSON.stringify(problem)}`);
    return list.problems.length ? EXIT.unhealthy : EXIT.ok;
  }
  const restored = await restoreCheckpoint(dir, {
    store,
    maxBytes: config.checkpoints.restore_max_bytes,
    maxEntries: config.checkpoints.restore_max_entries,
    ...(options.name ? { checkpoint: options.name } : {}),
    restoredBy: context.actor,
    reason: options.reason ?? 'manual (pit checkpoint restore)',
  });
  if (options.json) context.output.out(JSON.stringify(restored, null, 2));
  else
    context.output.out(
      `workspace of cell ${uuid} restored from ${restored.checkpoint.name} (${restored.entries} entries, ${restored.bytes} bytes); the previous workspace was replaced atomically`,
    );
  return EXIT.ok;
}
