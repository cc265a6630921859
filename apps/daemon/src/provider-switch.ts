/**
 * Which provider an agent's config selects now, and the moment it is switched: to a fallback
 * while its primary is down, and back. A switch writes each of the agent's `provider_files`
 * with the content configured for the target provider (atomically; beneath the cell for a
 * relative path, never through a link), keeps the content it replaced in
 * `<state_dir>/provider-switches/objects/<sha256>` and records the agent's provider in
 * `<state_dir>/provider-switches/<cell uuid | host>/<agent>.json` — apart from the last-known-good
 * snapshots, which are not taken while the agent runs on a fallback. Every switch is a
 * `provider_switched` event with both hashes of every file. It decides nothing (policy does).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { z } from 'zod';
import {
  readFileBeneath,
  readFileSafe,
  readJsonFile,
  writeFileAtomic,
  writeFileAtomicBeneath,
  writeJsonAtomic,
} from '@pit/cell-spec';
import { configOf, resolveAgentPath, type Slot } from './slot.js';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** An agent's providers as its config declares them, and the one its config selects now. */
export interface AgentProviders {
  primary: string;
  fallbacks: readonly string[];
  current: string;
  /** Whether its `provider_files` have a content for `provider`. */
  canSwitch: (provider: string) => boolean;
  /** `provider_switch_back_s` in ms, when set. */
  switchBackAfter?: number;
}

const RecordSchema = z.object({
  version: z.literal(1),
  agent: z.string(),
  current: z.string(),
  since: z.string(),
});
type SwitchRecord = z.infer<typeof RecordSchema>;

/** The record of each slot, once read. */
const records = new WeakMap<Slot, SwitchRecord | null>();
/** A switch decided for the next start, applied after a rollback (restart.ts). */
const pending = new WeakMap<Slot, { to: string; direction: 'fallback' | 'back'; reason: string }>();

const recordPath = (context: SupervisorContext, slot: Slot) =>
  switchRecordPath(context.stateDir, slot.cell?.uuid, slot.name);

const switchRecordPath = (stateDir: string, cell: string | undefined, name: string) =>
  join(stateDir, 'provider-switches', cell ?? 'host', `${name}.json`);

/** The provider an agent's last switch selected, from disk (for `pit status`); undefined when none or unreadable. */
export async function readRecordedProvider(
  stateDir: string,
  cell: string | undefined,
  name: string,
): Promise<string | undefined> {
  const record = await readJsonFile(switchRecordPath(stateDir, cell, name), RecordSchema).catch(
    () => undefined,
  );
  return record?.current;
}

/** Reads the agent's provider record once (a missing or damaged one: on its primary). */
export async function loadProviderRecord(context: SupervisorContext, slot: Slot): Promise<void> {
  if (records.has(slot)) return;
  const record = await readJsonFile(recordPath(context, slot), RecordSchema).catch(() => null);
  // A switch made while this read was in flight is newer than what was read.
  if (!records.has(slot)) records.set(slot, record);
}

/** The agent's providers, or undefined when it declares none. */
export function providersOf(slot: Slot): AgentProviders | undefined {
  const config = configOf(slot);
  if (!config?.provider) return undefined;
  const primary = config.provider;
  const fallbacks = config.fallback_providers;
  const recorded = records.get(slot)?.current;
  const current =
    recorded !== undefined && (recorded === primary || fallbacks.includes(recorded))
      ? recorded
      : primary;
  const files = config.provider_files;
  return {
    primary,
    fallbacks,
    current,
    canSwitch: (provider) => files.length > 0 && files.every((file) => provider in file.contents),
    ...(config.provider_switch_back_s !== undefined
      ? { switchBackAfter: config.provider_switch_back_s * 1000 }
      : {}),
  };
}

/** Whether the agent runs on a fallback now (its config is not last known good material then). */
export function onFallback(slot: Slot): boolean {
  const providers = providersOf(slot);
  return providers !== undefined && providers.current !== providers.primary;
}

/** Asks for a switch at the agent's next start (after its config is rolled back, if it is). */
export function switchAtNextStart(
  slot: Slot,
  to: string,
  direction: 'fallback' | 'back',
  reason: string,
): void {
  pending.set(slot, { to, direction, reason });
}

/**
 * Before a start: carries out a pending switch; otherwise, when the agent is on a fallback,
 * writes the fallback's files again (a rollback restores the primary's last-known-good).
 */
export async function applyProviderFiles(context: SupervisorContext, slot: Slot): Promise<void> {
  const providers = providersOf(slot);
  const wanted = pending.get(slot);
  pending.delete(slot);
  if (!providers) return;
  if (wanted) await switchProvider(context, slot, wanted);
  else if (providers.current !== providers.primary && providers.canSwitch(providers.current))
    await writeProviderFiles(context, slot, providers.current);
}

/** The moment an agent's config is switched to another provider: files written, record and event. */
export async function switchProvider(
  context: SupervisorContext,
  slot: Slot,
  how: { to: string; direction: 'fallback' | 'back'; reason: string },
): Promise<boolean> {
  const providers = providersOf(slot);
  if (!providers || !providers.canSwitch(how.to) || context.dryRun) return false;
  try {
    const files = await writeProviderFiles(context, slot, how.to);
    const record: SwitchRecord = {
      version: 1,
      agent: slot.key,
      current: how.to,
      since: iso(context.now()),
    };
    const path = recordPath(context, slot);
    await fs.mkdir(dirname(path), { recursive: true });
    await writeJsonAtomic(path, record);
    records.set(slot, record);
    await context.events.agentEvent(slot, {
      event: 'provider_switched',
      from: providers.current,
      to: how.to,
      direction: how.direction,
      files,
      reason: how.reason,
    });
    context.logger.info('provider switched', {
      agent: slot.key,
      from: providers.current,
      to: how.to,
      files,
    });
    return true;
  } catch (error) {
    context.logger.warn('provider switch failed', {
      agent: slot.key,
      to: how.to,
      error: error instanceof Error ? error.message : String(error),
    });
    return false;
  }
}

type SwitchedFile = { path: string; old_sha256: string | null; new_sha256: string };
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

/** Writes every provider file with `provider`'s content; keeps what it replaced. */
async function writeProviderFiles(
  context: SupervisorContext,
  slot: Slot,
  provider: string,
): Promise<SwitchedFile[]> {
  const objects = join(context.stateDir, 'provider-switches', 'objects');
  await fs.mkdir(objects, { recursive: true });
  const written: SwitchedFile[] = [];
  for (const file of configOf(slot)?.provider_files ?? []) {
    const content = file.contents[provider] ?? '';
    const target = resolveAgentPath(slot, file.path, context.stateDir);
    const root = slot.cell && !isAbsolute(file.path) ? slot.cell.dir : undefined;
    const old = await readOld(target, root);
    const oldHash = old === undefined ? null : sha256(old);
    if (old !== undefined && oldHash !== null)
      await writeFileAtomic(join(objects, oldHash), old, { mode: 0o600 });
    if (root !== undefined)
      await writeFileAtomicBeneath(root, target, content, { createParents: true });
    else await writeFileAtomic(target, content);
    written.push({
      path: root !== undefined ? relative(root, target) : target,
      old_sha256: oldHash,
      new_sha256: sha256(content),
    });
  }
  return written;
}

async function readOld(target: string, root: string | undefined): Promise<Buffer | undefined> {
  const options = { maxBytes: 4 * 1024 * 1024 };
  try {
    return root !== undefined
      ? await readFileBeneath(root, target, options)
      : await readFileSafe(target, options);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'CELL_NOT_FOUND' || code === 'ENOENT') return undefined;
    throw error;
  }
}
