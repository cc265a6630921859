/**
 * Checks of a config's values that its schema cannot make: a cells root that is the machine's
 * root or a system directory (refused: the daemon writes, creates and deletes under it as root),
 * and values that look like secrets written into an agent's `env` or `argv` (warned: they belong
 * in the daemon's environment, named by `env_from`). Also the patterns the logger redacts. It
 * never prints a value it suspects.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { PitConfig } from './config-schema.js';

/** One warning, with its key path; the message never contains the value. */
export interface ConfigWarning {
  path: Array<string | number>;
  message: string;
}

/** Directories that must not be a cells root, each with the reason. */
const SYSTEM_DIRECTORIES: ReadonlyMap<string, string> = new Map([
  ['/', 'the root of the filesystem'],
  ['/bin', 'a system directory (programs)'],
  ['/sbin', 'a system directory (programs)'],
  ['/usr', 'a system directory (programs and libraries)'],
  ['/lib', 'a system directory (libraries)'],
  ['/lib32', 'a system directory (libraries)'],
  ['/lib64', 'a system directory (libraries)'],
  ['/libx32', 'a system directory (libraries)'],
  ['/etc', 'a system directory (the machine’s configuration)'],
  ['/boot', 'a system directory (the kernel and boot loader)'],
  ['/proc', 'a kernel file system'],
  ['/sys', 'a kernel file system'],
  ['/dev', 'a kernel file system (devices)'],
  ['/run', 'a system directory (runtime state)'],
  ['/var', 'a system directory (use a directory below it, such as /var/missions)'],
  ['/tmp', 'a directory every user can write (anyone could plant a cell)'],
  ['/var/tmp', 'a directory every user can write (anyone could plant a cell)'],
  ['/home', 'the parent of every user’s home'],
  ['/root', 'root’s home directory'],
  ['/opt', 'a system directory (add-on software)'],
  ['/srv', 'a system directory (use a directory below it, such as /srv/missions)'],
  ['/mnt', 'a mount point directory'],
  ['/media', 'a mount point directory'],
]);

/** Trees that must not hold a cells root at any depth. */
const SYSTEM_TREES = [
  '/bin',
  '/sbin',
  '/usr',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/etc',
  '/boot',
  '/proc',
  '/sys',
  '/dev',
];

/**
 * Why `root` (absolute) must not be a cells root, or `undefined` when it may. The path is
 * normalised, and followed through symlinks when it exists.
 * @example
 * cellsRootProblem('/') // 'is the root of the filesystem: …'
 */
export function cellsRootProblem(root: string): string | undefined {
  const candidates = new Set([resolve(root)]);
  try {
    candidates.add(realpathSync(root));
  } catch {
    // Not there yet: the daemon creates it; the written path is what counts.
  }
  for (const path of candidates) {
    const reason = SYSTEM_DIRECTORIES.get(path);
    const tree = SYSTEM_TREES.find((top) => path.startsWith(`${top}/`));
    const why = reason ?? (tree ? `inside ${tree}, ${SYSTEM_DIRECTORIES.get(tree)}` : undefined);
    if (why === undefined) continue;
    const shown = path === resolve(root) ? path : `${resolve(root)} (${path})`;
    return `${shown} is ${why}: the daemon creates, rewrites and deletes files under its cells root (as root in production) and agents' sandboxes bind its cells; use a directory of its own, such as /var/missions`;
  }
  return undefined;
}

/** An environment variable name that usually holds a secret. */
const SECRET_NAME =
  /(secret|token|passw(or)?d|passphrase|credential|private_?key|api_?key|access_?key|_key$|^key$)/i;
/** A URL with a password in it: `scheme://user:password@host`. */
const URL_WITH_PASSWORD = /[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:[^\s/@]+@/i;
/** A command-line flag that usually carries a secret, alone (`--password`) or with its value (`--api-token=…`). */
const SECRET_FLAG =
  /^--?[a-z0-9_-]*(secret|token|passw(or)?d|passphrase|credential|api-?key|private-?key|access-?key|auth)[a-z0-9_-]*$/i;

/** A flag that names where a secret is (`--token-file`, `--password-env`), not the secret. */
const NAMES_A_PLACE = /[-_](file|path|env|dir|name)$/i;

const ADVICE =
  'it would be visible to anyone who can read the config, and in logs; put it in the daemon’s environment and name it with env_from instead';

/**
 * Values in agents' `env` and `argv` that look like secrets: a variable whose name says secret,
 * token, password, key…, a URL with a password, a flag such as `--api-token=…` or
 * `--password …`. Warnings, not errors (a name can mislead); each names the key, never the value.
 */
export function findInlineSecrets(config: PitConfig): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  for (const [name, agent] of Object.entries(config.agents)) {
    for (const [variable, value] of Object.entries(agent.env)) {
      if (value === '') continue;
      if (URL_WITH_PASSWORD.test(value))
        warnings.push({
          path: ['agents', name, 'env', variable],
          message: `holds a URL with a password: ${ADVICE}`,
        });
      else if (SECRET_NAME.test(variable))
        warnings.push({
          path: ['agents', name, 'env', variable],
          message: `looks like a secret (by its name): ${ADVICE}`,
        });
    }
    for (const found of argvSecrets(agent.argv ?? []))
      warnings.push({
        path: ['agents', name, 'argv', found.index],
        message: `${found.what}: ${ADVICE}`,
      });
  }
  return warnings;
}

/** The argv elements that carry a secret: `--flag=value`, the value after `--flag`, a URL with a password. */
function argvSecrets(argv: readonly string[]): Array<{ index: number; what: string }> {
  const found: Array<{ index: number; what: string }> = [];
  argv.forEach((argument, index) => {
    const equals = argument.indexOf('=');
    const flag = equals > 0 ? argument.slice(0, equals) : argument;
    if (URL_WITH_PASSWORD.test(argument))
      found.push({ index, what: 'holds a URL with a password' });
    else if (isSecretFlag(flag) && equals > 0 && equals < argument.length - 1)
      found.push({ index, what: `${flag}=… looks like a secret on the command line` });
    else if (isSecretFlag(argument) && index + 1 < argv.length && !argv[index + 1]!.startsWith('-'))
      found.push({
        index: index + 1,
        what: `the value after ${argument} looks like a secret on the command line`,
      });
  });
  return found;
}

/**
 * The literal values {@link findInlineSecrets} warns about, so that the logger can redact
 * them wherever they would appear.
 */
export function inlineSecretValues(config: PitConfig): string[] {
  const values: string[] = [];
  for (const warning of findInlineSecrets(config)) {
    const [, name, field, key] = warning.path;
    const agent = config.agents[name as string];
    if (!agent) continue;
    const value = field === 'env' ? agent.env[key as string] : agent.argv?.[key as number];
    if (value === undefined) continue;
    const equals = field === 'argv' ? value.indexOf('=') : -1;
    values.push(equals > 0 && !URL_WITH_PASSWORD.test(value) ? value.slice(equals + 1) : value);
    const password = /:\/\/[^\s/:@]*:([^\s/@]+)@/.exec(value)?.[1];
    if (password) values.push(password);
  }
  return values;
}

/**
 * `text` with the values of secret-looking flags (`--api-token=…`) and the passwords of URLs
 * (`postgres://admin:…@db`) replaced by `[redacted]`: what the logger applies to every string.
 */
export function redactSecretPatterns(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:)[^\s/@]+@/gi, '$1[redacted]@')
    .replace(
      /(--?[a-z0-9_-]*(?:secret|token|passw(?:or)?d|passphrase|credential|api-?key|private-?key|access-?key|auth)[a-z0-9_-]*=)[^\s"',]+/gi,
      '$1[redacted]',
    );
}

/** Whether `argument` is a flag whose next argument is a secret (`--password`, `--api-token`). */
export function isSecretFlag(argument: string): boolean {
  return SECRET_FLAG.test(argument) && !NAMES_A_PLACE.test(argument);
}
