import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { cellPaths } from '@pit/cell-spec';
import type { CheckpointManifest } from '../src/checkpoint-layout.js';

/** One raw tar entry, as a hostile or broken archive would have it. */
export interface RawEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice';
  data?: Buffer;
  /** Declared size (defaults to the data's length). */
  size?: number;
  linkpath?: string;
  mode?: number;
}

/** Builds a .tar.gz byte by byte with node-tar's header encoder: no safety checks on the way. */
export function buildArchive(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = entry.data ?? Buffer.alloc(0);
    const type = entry.type ?? 'File';
    const header = new Header({
      path: entry.path,
      type,
      size: entry.size ?? (type === 'File' ? data.length : 0),
      mode: entry.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      mtime: new Date('2026-01-01T00:00:00Z'),
      uid: 0,
      gid: 0,
      linkpath: entry.linkpath,
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block);
    if (data.length > 0) {
      blocks.push(data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad > 0) blocks.push(Buffer.alloc(pad));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** Installs `archive` as checkpoint `name` of the cell with a manifest that matches it (so the hash check passes). */
export async function plantCheckpoint(
  cell: string,
  name: string,
  archive: Buffer,
  overrides: Partial<CheckpointManifest> = {},
): Promise<void> {
  const { checkpoints } = cellPaths(cell);
  await fs.mkdir(checkpoints, { recursive: true });
  await fs.writeFile(`${checkpoints}/${name}.tar.gz`, archive);
  const manifest: CheckpointManifest = {
    ts: name.replace(/T(\d{2})-(\d{2})-(\d{2})/, 'T$1:$2:$3').replace(/Z-\d+$/, 'Z'),
    name,
    sha256: createHash('sha256').update(archive).digest('hex'),
    bytes: archive.length,
    files: 1,
    entries: 1,
    unpacked_bytes: 0,
    created_by: 'attacker',
    reason: 'test',
    skipped: [],
    ...overrides,
  };
  await fs.writeFile(`${checkpoints}/${name}.json`, JSON.stringify(manifest));
}
