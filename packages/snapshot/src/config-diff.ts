import { compareBytes } from './config-scan.js';
import { PitError } from '@pit/cell-spec';
import { readRegularFile } from './files.js';
import { findExtras, inspectLive, liveHash, type LiveState } from './live-state.js';
import { readObject } from './store-io.js';
import type { ConfigSet, StorePaths } from './store-layout.js';
import { unifiedDiff } from './unified-diff.js';

/** How one path differs between the live config and last known good. */
export interface ConfigDiffFile {
  path: string;
  /**
   * `modified` (content), `mode` (permissions only), `added` (live only), `removed`
   * (last known good only), `type` (a file became a link, a directory, …).
   */
  change: 'modified' | 'mode' | 'added' | 'removed' | 'type';
  /** `file`, `symlink`, `dir`, `missing` or a description of something else. */
  good_kind: string;
  live_kind: string;
  good_sha256: string | null;
  live_sha256: string | null;
  good_mode: number | null;
  live_mode: number | null;
  /** A unified diff (last known good → live) when both sides are small text files. */
  diff?: string;
  /** Why no diff could be made (corrupt object, unreadable file). */
  problem?: string;
}

/** The difference between the live config and the last-known-good set. */
export interface ConfigDiff {
  agent: string;
  /** The last-known-good set compared against. */
  set: string;
  changed: boolean;
  /** Only the paths that differ, in byte-wise order. */
  files: ConfigDiffFile[];
  /** How many paths are identical. */
  unchanged: number;
}

/** Options of {@link diffConfig}. */
export interface DiffConfigOptions {
  /** Files larger than this (either side) get no text diff. (bytes) @default 65536 */
  maxTextBytes?: number;
  /** Unchanged lines around each change. @default 3 */
  context?: number;
}

function isText(content: Buffer): boolean {
  if (content.includes(0)) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(content);
    return true;
  } catch {
    return false;
  }
}

function kindOf(live: LiveState): string {
  return live.kind === 'other' ? live.description : live.kind;
}

/** Compares the live config with a stored set. Reading failures become `problem`s, not exceptions. */
export async function diffConfig(
  paths: StorePaths,
  agent: string,
  set: ConfigSet,
  options: DiffConfigOptions = {},
): Promise<ConfigDiff> {
  const maxText = options.maxTextBytes ?? 64 * 1024;
  const files: ConfigDiffFile[] = [];
  let unchanged = 0;
  for (const entry of set.entries) {
    const live = await inspectLive(entry.path);
    const goodSha = entry.kind === 'dir' ? null : entry.sha256;
    const goodMode = entry.kind === 'symlink' ? null : entry.mode;
    const liveSha = liveHash(live);
    const liveMode = live.kind === 'file' || live.kind === 'dir' ? live.mode : null;
    let change: ConfigDiffFile['change'] | undefined;
    if (live.kind === 'missing') change = 'removed';
    else if (live.kind !== entry.kind) change = 'type';
    else if (liveSha !== goodSha) change = 'modified';
    else if (liveMode !== goodMode) change = 'mode';
    if (change === undefined) {
      unchanged += 1;
      continue;
    }
    const item: ConfigDiffFile = {
      path: entry.path,
      change,
      good_kind: entry.kind,
      live_kind: kindOf(live),
      good_sha256: goodSha,
      live_sha256: liveSha,
      good_mode: goodMode,
      live_mode: liveMode,
    };
    if (
      entry.kind === 'file' &&
      (change === 'modified' || change === 'removed') &&
      entry.size <= maxText
    ) {
      try {
        const good = await readObject(paths, entry.sha256, maxText, entry.path);
        const now =
          live.kind === 'file'
            ? live.size <= maxText
              ? (await readRegularFile(entry.path, maxText)).content
              : undefined
            : Buffer.alloc(0);
        if (now !== undefined && isText(good) && isText(now)) {
          item.diff = unifiedDiff(good.toString('utf8'), now.toString('utf8'), {
            fromLabel: `${entry.path} (last known good)`,
            toLabel: live.kind === 'missing' ? '/dev/null' : `${entry.path} (live)`,
            context: options.context,
          });
        }
      } catch (error) {
        item.problem = PitError.is(error) || error instanceof Error ? error.message : String(error);
      }
    }
    files.push(item);
  }
  for (const extra of await findExtras(set.roots, set.entries)) {
    const live = await inspectLive(extra.path).catch(
      () => ({ kind: 'other', description: extra.description }) as const,
    );
    const item: ConfigDiffFile = {
      path: extra.path,
      change: 'added',
      good_kind: 'missing',
      live_kind: kindOf(live),
      good_sha256: null,
      live_sha256: liveHash(live),
      good_mode: null,
      live_mode: live.kind === 'file' ? live.mode : null,
    };
    if (live.kind === 'file' && live.size <= maxText) {
      const now = await readRegularFile(extra.path, maxText).then(
        (read) => read.content,
        () => undefined,
      );
      if (now !== undefined && isText(now))
        item.diff = unifiedDiff('', now.toString('utf8'), {
          fromLabel: '/dev/null',
          toLabel: `${extra.path} (live)`,
          context: options.context,
        });
    }
    files.push(item);
  }
  files.sort((a, b) => compareBytes(a.path, b.path));
  return { agent, set: set.sha256, changed: files.length > 0, files, unchanged };
}
