import { promises as fs } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
import { DaemonError, type DaemonErrorProblem } from './errors.js';
import {
  crossCheckConfig,
  findLiteralSecrets,
  PitConfigSchema,
  secretEnvNames,
  type PitConfig,
} from './config-schema.js';
import { findDeprecatedKeys } from './config-deprecations.js';
import { cellsRootProblem, findInlineSecrets, inlineSecretValues } from './config-safety.js';
import { locateTomlKeys, positionOf, type SourcePosition } from './toml-locations.js';

/** Where the config came from. */
export type ConfigSource =
  | 'flag'
  | 'env'
  | 'cwd'
  | 'user'
  | 'system'
  /** `RESURRECTION_CONFIG`, the first daemons' variable: deprecated, read last. */
  | 'resurrection-env'
  | 'default';

/** The first daemons' config variable, read as a last resort (see {@link locateConfig}). */
export const RESURRECTION_CONFIG_ENV = 'RESURRECTION_CONFIG';

/** The result of {@link locateConfig}. */
export interface ConfigLocation {
  source: ConfigSource;
  /** The file, absent for the embedded default. */
  path?: string;
}

/** What {@link locateConfig} looks at (so that it is testable without touching the real ones). */
export interface LocateConfigOptions {
  /** The value of `--config`, if given. */
  flag?: string;
  /** The environment (`PIT_CONFIG`). */
  env: Record<string, string | undefined>;
  cwd: string;
  /** The user's home directory (`~/.config/pit/pit.toml`). */
  home: string;
  /** @default '/etc/pit/pit.toml' */
  systemPath?: string;
}

/** The system-wide config file. */
export const SYSTEM_CONFIG_PATH = '/etc/pit/pit.toml';

/**
 * Finds the config file: `--config`, `PIT_CONFIG`, `./pit.toml`, `~/.config/pit/pit.toml`,
 * `/etc/pit/pit.toml`, then (deprecated, the first daemons' variable) `RESURRECTION_CONFIG`,
 * else the embedded default. A file named by `--config`, `PIT_CONFIG` or `RESURRECTION_CONFIG`
 * must exist.
 * @throws {DaemonError} DAEMON_CONFIG_NOT_FOUND when an explicitly named file does not exist.
 */
export async function locateConfig(options: LocateConfigOptions): Promise<ConfigLocation> {
  const explicit: Array<[ConfigSource, string | undefined]> = [
    ['flag', options.flag],
    ['env', options.env.PIT_CONFIG],
  ];
  for (const [source, value] of explicit) {
    if (value === undefined || value === '') continue;
    const path = resolve(options.cwd, value);
    if (!(await exists(path))) {
      const where = source === 'flag' ? '--config' : 'PIT_CONFIG';
      throw new DaemonError('DAEMON_CONFIG_NOT_FOUND', `${where}: ${path}: no such file`);
    }
    return { source, path };
  }
  const candidates: Array<[ConfigSource, string]> = [
    ['cwd', join(options.cwd, 'pit.toml')],
    ['user', join(options.home, '.config', 'pit', 'pit.toml')],
    ['system', options.systemPath ?? SYSTEM_CONFIG_PATH],
  ];
  for (const [source, path] of candidates) if (await exists(path)) return { source, path };
  const legacy = options.env[RESURRECTION_CONFIG_ENV];
  if (legacy !== undefined && legacy !== '') {
    const path = resolve(options.cwd, legacy);
    if (!(await exists(path)))
      throw new DaemonError(
        'DAEMON_CONFIG_NOT_FOUND',
        `${RESURRECTION_CONFIG_ENV}: ${path}: no such file (no pit.toml was found before it)`,
      );
    return { source: 'resurrection-env', path };
  }
  return { source: 'default' };
}

/** What to do with a seed-format config: the command that converts it. */
const importHint = (path: string) =>
  `convert it with \`pit config import ${path} -o pit.toml\` and name the result with PIT_CONFIG or --config`;

/**
 * Loads the file `RESURRECTION_CONFIG` names: a pit.toml is used, with a deprecation notice; a
 * seed format (`resurrection_pool.json`, `lazarus-registry.yaml`, or a `lazarus-pit.toml` that
 * is not a pit.toml) is refused, saying how to convert it.
 * @throws {DaemonError} DAEMON_CONFIG_INVALID, DAEMON_CONFIG_UNSAFE.
 */
async function loadResurrectionConfig(
  path: string,
  options: LoadConfigOptions,
): Promise<LoadedConfig> {
  const where = `${RESURRECTION_CONFIG_ENV}=${path}`;
  if (extname(path).toLowerCase() !== '.toml')
    throw new DaemonError(
      'DAEMON_CONFIG_INVALID',
      `${where}: not a pit.toml (the first daemons' ${extname(path) || 'extensionless'} format; the Pit reads only TOML from ${RESURRECTION_CONFIG_ENV}): ${importHint(path)}`,
    );
  let loaded: LoadedConfig;
  try {
    loaded = await loadConfigFile(path, { ...options, source: 'resurrection-env' });
  } catch (error) {
    if (!(error instanceof DaemonError && error.code === 'DAEMON_CONFIG_INVALID')) throw error;
    throw new DaemonError(
      'DAEMON_CONFIG_INVALID',
      `${(error as Error).message}\n${where}: if this is a lazarus-pit.toml, ${importHint(path)}`,
      { cause: error, problems: error.problems },
    );
  }
  const notice = `${path}: ${RESURRECTION_CONFIG_ENV} is deprecated (read only when no pit.toml is found elsewhere): name this file with PIT_CONFIG or --config instead`;
  return { ...loaded, notices: [notice, ...loaded.notices] };
}

async function exists(path: string): Promise<boolean> {
  return fs.stat(path).then(
    () => true,
    () => false,
  );
}

/** One thing wrong with a config, with where it is. */
export interface ConfigProblem extends DaemonErrorProblem {
  /** Key path (`agents.forge.probes.health_url`), or `(root)`. */
  path: string;
  message: string;
  /** 1-based, TOML only. */
  line?: number;
  column?: number;
}

/** Renders problems one per line: `file:line:column: key.path: message`. */
export function formatConfigProblems(file: string, problems: ConfigProblem[]): string {
  return problems
    .map((problem) => {
      const where =
        problem.line !== undefined ? `${file}:${problem.line}:${problem.column ?? 1}` : file;
      return `${where}: ${problem.path}: ${problem.message}`;
    })
    .join('\n');
}

/** The outcome of {@link parseConfig}. */
export type ParseConfigResult =
  | {
      ok: true;
      config: PitConfig;
      policyInput: unknown;
      /** Older keys that are set, each with the key to use instead (the config is valid). */
      notices: ConfigProblem[];
      /** Values that look like secrets written in agents' `env` or `argv` (the config is valid). */
      warnings: ConfigProblem[];
    }
  | { ok: false; problems: ConfigProblem[] };

/**
 * Parses and validates a config text (TOML or JSON), collecting every problem at once:
 * syntax errors with line and column, schema errors with their key path (and, for TOML, the
 * line and column of the key), unknown keys, and secrets written in place of an environment
 * variable name. Relative paths are left as written (see {@link resolveConfigPaths}).
 */
export function parseConfig(text: string, format: 'toml' | 'json'): ParseConfigResult {
  let raw: unknown;
  let locations = new Map<string, SourcePosition>();
  if (format === 'toml') {
    try {
      raw = parseToml(text);
    } catch (error) {
      if (error instanceof TomlError)
        return {
          ok: false,
          problems: [
            {
              path: '(syntax)',
              message: error.message.split('\n')[0] ?? error.message,
              line: error.line,
              column: error.column,
            },
          ],
        };
      throw error;
    }
    locations = locateTomlKeys(text);
  } else {
    try {
      raw = JSON.parse(text);
    } catch (error) {
      const message = (error as Error).message;
      const offset = /position (\d+)/.exec(message)?.[1];
      const position = offset === undefined ? undefined : offsetToPosition(text, Number(offset));
      return { ok: false, problems: [{ path: '(syntax)', message, ...position }] };
    }
  }
  const problems: ConfigProblem[] = [];
  const at = (path: ReadonlyArray<PropertyKey>) => positionOf(locations, path) ?? {};
  for (const found of [...findLiteralSecrets(raw), ...crossCheckConfig(raw)])
    problems.push({ path: found.path.join('.'), message: found.message, ...at(found.path) });
  const parsed = PitConfigSchema.safeParse(raw);
  if (!parsed.success) problems.push(...issuesToProblems(parsed.error, at));
  if (problems.length > 0) return { ok: false, problems: sortProblems(problems) };
  const config = parsed.data!;
  return {
    ok: true,
    config,
    policyInput: (raw as { policy?: unknown }).policy ?? {},
    notices: findDeprecatedKeys(config).map((found) => ({
      path: found.path.join('.'),
      message: found.message,
      ...at(found.path),
    })),
    warnings: sortProblems(
      findInlineSecrets(config).map((found) => ({
        path: found.path.join('.'),
        message: found.message,
        ...at(found.path),
      })),
    ),
  };
}

function issuesToProblems(
  error: z.ZodError,
  at: (path: ReadonlyArray<PropertyKey>) => Partial<SourcePosition>,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const path = [...issue.path, key];
        problems.push({ path: path.map(String).join('.'), message: 'unknown key', ...at(path) });
      }
      continue;
    }
    const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
    problems.push({ path, message: issue.message, ...at(issue.path) });
  }
  return problems;
}

function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  return [...problems].sort(
    (a, b) =>
      (a.line ?? Infinity) - (b.line ?? Infinity) ||
      (a.column ?? 0) - (b.column ?? 0) ||
      a.path.localeCompare(b.path),
  );
}

function offsetToPosition(text: string, offset: number): SourcePosition {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

/**
 * Refuses a config file that someone other than its owner could change (as sshd's
 * StrictModes does): the file, or any directory above it, writable by group or others
 * (a sticky directory such as /tmp is allowed), or owned by a user other than root and `uid`.
 * The config holds commands the daemon runs.
 * @throws {DaemonError} DAEMON_CONFIG_UNSAFE naming the path and what to change.
 */
export async function assertConfigPermissions(path: string, uid: number): Promise<void> {
  const real = await fs.realpath(path).catch((error: Error) => {
    throw new DaemonError('DAEMON_CONFIG_NOT_FOUND', `${path}: ${error.message}`, { cause: error });
  });
  const owner = (stat: import('node:fs').Stats, what: string) => {
    if (stat.uid !== 0 && stat.uid !== uid) {
      throw new DaemonError(
        'DAEMON_CONFIG_UNSAFE',
        `${what}: owned by uid ${stat.uid}, neither root nor the daemon's user (uid ${uid}); refused (StrictModes)`,
      );
    }
  };
  const file = await fs.stat(real);
  if (!file.isFile()) throw new DaemonError('DAEMON_CONFIG_UNSAFE', `${real}: not a regular file`);
  if ((file.mode & 0o022) !== 0) {
    throw new DaemonError(
      'DAEMON_CONFIG_UNSAFE',
      `${real}: writable by ${describeWriters(file.mode)} (mode ${(file.mode & 0o777).toString(8)}); it holds commands the daemon runs: chmod go-w ${real}`,
    );
  }
  owner(file, real);
  let dir = dirname(real);
  for (;;) {
    const stat = await fs.stat(dir);
    const sticky = (stat.mode & 0o1000) !== 0;
    if ((stat.mode & 0o022) !== 0 && !sticky) {
      throw new DaemonError(
        'DAEMON_CONFIG_UNSAFE',
        `${dir}: directory of the config ${real} is writable by ${describeWriters(stat.mode)} (mode ${(stat.mode & 0o777).toString(8)}); refused (StrictModes): chmod go-w ${dir}`,
      );
    }
    owner(stat, `${dir} (directory of the config ${real})`);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
}

function describeWriters(mode: number): string {
  return [(mode & 0o020) !== 0 ? 'group' : '', (mode & 0o002) !== 0 ? 'others' : '']
    .filter(Boolean)
    .join(' and ');
}

/** Turns the config's relative paths into absolute ones against `baseDir`. */
export function resolveConfigPaths(config: PitConfig, baseDir: string): PitConfig {
  const abs = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  const stateDir = abs(config.daemon.state_dir);
  return {
    ...config,
    daemon: {
      ...config.daemon,
      state_dir: stateDir,
      pid_file: config.daemon.pid_file ? abs(config.daemon.pid_file) : join(stateDir, 'pit.pid'),
      ...(config.daemon.log_file ? { log_file: abs(config.daemon.log_file) } : {}),
    },
    cells: { ...config.cells, root: abs(config.cells.root) },
    agents: Object.fromEntries(
      Object.entries(config.agents).map(([name, agent]) => [
        name,
        {
          ...agent,
          ...(agent.cwd ? { cwd: abs(agent.cwd) } : {}),
          ...(agent.argv && agent.argv_base === 'config'
            ? { argv: resolveArgv(agent.argv, baseDir) }
            : {}),
        },
      ]),
    ),
  };
}

/**
 * An agent's argv with `argv_base = "config"`: a relative argv[0] with a `/` in it, and the
 * program's script (the first argument that is not an option) when it looks like a file (a `/`
 * or an extension: `agent.js`, `lib/run.py`), made absolute against the config file's directory,
 * so that neither is ever a file an agent wrote in the workspace (the working directory). A bare
 * argv[0] is looked up in PATH. Everything else is passed as written: the program's own
 * arguments (`--config forge.json` is the program's business), options, numbers, words, URLs and
 * shell scripts (anything with a space or a character other than `A-Za-z0-9._/+@-`).
 */
export function resolveArgv(argv: string[], baseDir: string): string[] {
  const fileLike = (arg: string) =>
    !isAbsolute(arg) && /^[A-Za-z0-9._/+@-]+$/.test(arg) && !arg.startsWith('-');
  const script = argv.findIndex((arg, index) => index > 0 && !arg.startsWith('-'));
  return argv.map((arg, index) => {
    if (index === 0 && fileLike(arg) && arg.includes('/')) return resolve(baseDir, arg);
    if (index === script && fileLike(arg) && /\/|\.[A-Za-z][A-Za-z0-9]{0,7}$/.test(arg))
      return resolve(baseDir, arg);
    return arg;
  });
}

/** The config used when no file is found: supervise `./.pit/missions` with safe defaults. */
export const EMBEDDED_DEFAULT_CONFIG = `# The Pit's embedded default: used when no pit.toml is found.
[daemon]
state_dir = ".pit/state"

[cells]
root = ".pit/missions"
`;

/** A loaded config and where it came from. */
export interface LoadedConfig {
  config: PitConfig;
  source: ConfigSource;
  /** The file, absent for the embedded default. */
  path?: string;
  /** Relative paths in the config were resolved against this directory. */
  baseDir: string;
  /** Values of the environment variables the config names for secrets (to redact from logs). */
  secrets: string[];
  /** The `[policy]` table as written (for @pit/policy's reference checks). */
  policyInput: unknown;
  /**
   * Older keys that are set, each with the key to use instead, rendered one per line as
   * `file:line:column: key.path: message` (empty when there are none).
   */
  notices: string[];
  /**
   * Values that look like secrets written in agents' `env` or `argv`, rendered like
   * {@link notices} (never with the value); the logger redacts those values.
   */
  warnings: string[];
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions extends LocateConfigOptions {
  /** The daemon's uid, for the permission check. @default process.getuid() */
  uid?: number;
}

/**
 * Finds, reads, checks and validates the config; relative paths are resolved against the
 * file's directory (against `cwd` for the embedded default).
 * @throws {DaemonError} DAEMON_CONFIG_NOT_FOUND, DAEMON_CONFIG_UNSAFE, DAEMON_CONFIG_INVALID
 *   (with every problem, `file:line:column: key: message`, one per line; also on `.problems`).
 * @example
 * const { config, path } = await loadConfig({ flag: argv.config, env: process.env, cwd: process.cwd(), home: os.homedir() });
 */
export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const location = await locateConfig(options);
  if (!location.path) {
    const parsed = parseConfig(EMBEDDED_DEFAULT_CONFIG, 'toml');
    if (!parsed.ok)
      throw new DaemonError(
        'DAEMON_CONFIG_INVALID',
        `embedded default: ${formatConfigProblems('(default)', parsed.problems)}`,
      );
    const config = resolveConfigPaths(parsed.config, options.cwd);
    assertSafeCellsRoot('(default)', config);
    return {
      config,
      source: 'default',
      baseDir: options.cwd,
      secrets: collectSecrets(parsed.config, options.env),
      policyInput: parsed.policyInput,
      notices: [],
      warnings: [],
    };
  }
  if (location.source === 'resurrection-env') return loadResurrectionConfig(location.path, options);
  return loadConfigFile(location.path, { ...options, source: location.source });
}

/**
 * Reads, checks and validates one config file (`.toml` or `.json`).
 * @throws {DaemonError} DAEMON_CONFIG_NOT_FOUND, DAEMON_CONFIG_UNSAFE, DAEMON_CONFIG_INVALID.
 */
export async function loadConfigFile(
  path: string,
  options: { env: Record<string, string | undefined>; uid?: number; source?: ConfigSource },
): Promise<LoadedConfig> {
  const extension = extname(path).toLowerCase();
  const format = extension === '.toml' ? 'toml' : extension === '.json' ? 'json' : undefined;
  if (!format)
    throw new DaemonError(
      'DAEMON_CONFIG_INVALID',
      `${path}: unknown config format ${JSON.stringify(extension)}: use .toml or .json`,
    );
  await assertConfigPermissions(path, options.uid ?? process.getuid?.() ?? 0);
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (error) {
    throw new DaemonError('DAEMON_CONFIG_NOT_FOUND', `${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const parsed = parseConfig(text, format);
  if (!parsed.ok) {
    const count = parsed.problems.length;
    throw new DaemonError(
      'DAEMON_CONFIG_INVALID',
      `${path}: ${count} problem${count === 1 ? '' : 's'}:\n${formatConfigProblems(path, parsed.problems)}`,
      { problems: parsed.problems },
    );
  }
  const baseDir = dirname(resolve(path));
  const config = resolveConfigPaths(parsed.config, baseDir);
  assertSafeCellsRoot(path, config);
  return {
    config,
    source: options.source ?? 'flag',
    path: resolve(path),
    baseDir,
    secrets: collectSecrets(parsed.config, options.env),
    policyInput: parsed.policyInput,
    notices: parsed.notices.map((notice) => formatConfigProblems(path, [notice])),
    warnings: parsed.warnings.map((warning) => formatConfigProblems(path, [warning])),
  };
}

/**
 * Refuses a cells root that is `/` or a system directory (after resolving it).
 * @throws {DaemonError} DAEMON_CONFIG_INVALID naming the file, `cells.root` and why.
 */
function assertSafeCellsRoot(file: string, config: PitConfig): void {
  const problem = cellsRootProblem(config.cells.root);
  if (problem === undefined) return;
  const problems: ConfigProblem[] = [{ path: 'cells.root', message: problem }];
  throw new DaemonError(
    'DAEMON_CONFIG_INVALID',
    `${file}: 1 problem:\n${formatConfigProblems(file, problems)}`,
    { problems },
  );
}

/** What the logger redacts: the values of the variables the config names for secrets, and secret-looking literals. */
function collectSecrets(config: PitConfig, env: Record<string, string | undefined>): string[] {
  return [...secretEnvNames(config).map((name) => env[name]), ...inlineSecretValues(config)].filter(
    (value): value is string => typeof value === 'string' && value.length > 0,
  );
}
