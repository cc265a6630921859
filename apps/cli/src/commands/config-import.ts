/**
 * `pit config import FILE [-o pit.toml] [--force]`: converts an older fleet's config
 * (`lazarus-pit.toml`, either `resurrection_pool.json`, `lazarus-registry.yaml`) into a commented
 * pit.toml, checked with the daemon's own parser before it is written, and lists the keys that
 * have no equivalent. The conversions live in ../config-import/ (one file per format).
 */
import { promises as fs } from 'node:fs';
import { extname, resolve } from 'node:path';
import { parseConfig, formatConfigProblems } from '@pit/daemon';
import { parse as parseToml } from 'smol-toml';
import { parse as parseYaml } from 'yaml';
import { asRecord, type ImportedConfig } from '../config-import/imported-config.js';
import { convertLazarusPitToml } from '../config-import/lazarus-pit-toml.js';
import { convertLazarusRegistry } from '../config-import/lazarus-registry-yaml.js';
import { renderToml } from '../config-import/render-toml.js';
import { convertResurrectionPoolV1 } from '../config-import/resurrection-pool-v1.js';
import { convertResurrectionPoolV2 } from '../config-import/resurrection-pool-v2.js';
import type { CommandContext } from '../context.js';
import { UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';

const MAX_BYTES = 1024 * 1024;
const V2_KEYS = [
  'dead_timeout_seconds',
  'default_policy',
  'agents',
  'substitutions',
  'approval_channels',
];
const V1_KEYS = [
  'poll_interval',
  'dead_threshold',
  'approval_timeout',
  'gateways',
  'telegram',
  'nostr',
  'gitea',
];

/** Parses `text` in the format its file name says, with an error naming the file. */
function parseSource(
  path: string,
  text: string,
): { kind: 'toml' | 'json' | 'yaml'; document: Record<string, unknown> } {
  const extension = extname(path).toLowerCase();
  const kind =
    extension === '.toml'
      ? 'toml'
      : extension === '.json'
        ? 'json'
        : ['.yaml', '.yml'].includes(extension)
          ? 'yaml'
          : undefined;
  if (!kind)
    throw new UsageError(
      `${path}: unknown format ${JSON.stringify(extension)}: expected lazarus-pit.toml, resurrection_pool.json or lazarus-registry.yaml`,
    );
  let parsed: unknown;
  try {
    parsed =
      kind === 'toml' ? parseToml(text) : kind === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new UsageError(`${path}: not valid ${kind.toUpperCase()}: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new UsageError(`${path}: expected a ${kind === 'yaml' ? 'mapping' : 'table'} at the top`);
  return { kind, document: parsed as Record<string, unknown> };
}

/** Which `resurrection_pool.json` this is: the first pool's (seed 001) or the fleet pool's (seed 002). */
function poolShape(path: string, document: Record<string, unknown>): 'v1' | 'v2' {
  const keys = Object.keys(document);
  const missions = Object.values(asRecord(document.missions)).map(asRecord);
  const v2 =
    keys.some((key) => V2_KEYS.includes(key)) || missions.some((mission) => 'mode' in mission);
  const v1 =
    keys.some((key) => V1_KEYS.includes(key)) ||
    missions.some((mission) => 'revive_policy' in mission || 'agents' in mission);
  if (v1 !== v2) return v1 ? 'v1' : 'v2';
  throw new UsageError(
    `${path}: cannot tell which resurrection_pool.json this is: expected the first pool's keys (${V1_KEYS.join(', ')}) or the fleet pool's (${V2_KEYS.join(', ')})${v1 ? ', not both' : ''}`,
  );
}

/** Converts the file at `path`. */
export function convert(path: string, text: string): ImportedConfig {
  const { kind, document } = parseSource(path, text);
  if (kind === 'toml') return convertLazarusPitToml(document);
  if (kind === 'yaml') return convertLazarusRegistry(document);
  return poolShape(path, document) === 'v1'
    ? convertResurrectionPoolV1(document)
    : convertResurrectionPoolV2(document);
}

/** `pit config import FILE [-o OUT] [--force]` */
export async function configImport(
  context: CommandContext,
  file: string,
  options: { output?: string; force?: boolean },
): Promise<number> {
  const path = resolve(context.environment.cwd, file);
  const stat = await fs.stat(path).catch(() => undefined);
  if (!stat?.isFile()) throw new UsageError(`${path}: no such file`);
  if (stat.size > MAX_BYTES) throw new UsageError(`${path}: larger than ${MAX_BYTES} bytes`);
  const imported = convert(path, await fs.readFile(path, 'utf8'));
  const text = renderToml(imported, path);
  const checked = parseConfig(text, 'toml');
  if (!checked.ok)
    throw new Error(
      `the converted config does not check (a bug in pit config import):\n${formatConfigProblems('(converted)', checked.problems)}`,
    );
  if (options.output) {
    const out = resolve(context.environment.cwd, options.output);
    await fs
      .writeFile(out, text, { mode: 0o600, flag: options.force ? 'w' : 'wx' })
      .catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'EEXIST')
          throw new UsageError(`${out}: already exists (--force replaces it)`);
        throw error;
      });
    await fs.chmod(out, 0o600);
    context.output.err(
      `wrote ${out} (${imported.settings.length} settings from ${imported.format}); check it with \`pit config check -c ${out}\``,
    );
  } else context.output.out(text.trimEnd());
  if (imported.unsupported.length > 0) {
    context.output.err(
      `${imported.unsupported.length} key(s) not converted (no equivalent in the Pit; also listed as comments at the end of the file):`,
    );
    for (const key of imported.unsupported)
      context.output.err(`  ${key.from} = ${key.value}: ${key.reason}`);
  }
  return EXIT.ok;
}
