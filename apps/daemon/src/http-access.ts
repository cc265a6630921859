/**
 * Who may talk to the daemon's HTTP API: the listen address's exposure (loopback, or remote with
 * `allow_remote`), the `Host` header check that defeats DNS rebinding, the bearer tokens and the
 * identity each one stands for (the operator's token, one per named approver), compared in
 * constant time, and their minimum length. It decides access only; routing is http.ts's.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { PitConfig } from './config-schema.js';
import { DaemonError } from './errors.js';

/** The identity recorded for a decision made with the operator's token (`daemon.http.token_env`). */
export const OPERATOR_IDENTITY = 'operator';

/** The shortest bearer token accepted (characters). */
export const MIN_TOKEN_LENGTH = 32;

/** A bearer token and the identity it authenticates. */
export interface Credential {
  identity: string;
  token: string;
}

/** Whether `host` (a name or an IP literal, IPv6 with or without brackets) is a loopback address. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare);
  return false;
}

/** The host part of `host:port` (brackets of an IPv6 literal removed). */
export function listenHost(listen: string): string {
  return listen.slice(0, listen.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
}

/** Why a non-loopback `listen` is dangerous: said by `config check` and the daemon's refusal. */
export function remoteListenDanger(listen: string): string {
  return `${listen} is not a loopback address: anyone who can reach it reads the fleet's status, events and metrics, and the bearer tokens of approvals travel unencrypted (plain HTTP, no TLS)`;
}

/**
 * Refuses a non-loopback `listen` without `allow_remote = true` (the daemon does not start).
 * @throws {DaemonError} DAEMON_CONFIG_INVALID naming the key and the danger.
 */
export function assertListenAllowed(listen: string, allowRemote: boolean): void {
  if (allowRemote || isLoopbackHost(listenHost(listen))) return;
  throw new DaemonError(
    'DAEMON_CONFIG_INVALID',
    `daemon.http.listen: ${remoteListenDanger(listen)}; set daemon.http.allow_remote = true to accept that (preferably behind a TLS proxy, with daemon.http.allowed_hosts naming its host)`,
  );
}

/**
 * The credentials the config names: the operator's token (`token_env`) and one per approver
 * (`approvers.<name>.token_env`); an unset variable gives no credential.
 * @throws {DaemonError} DAEMON_CONFIG_INVALID when a set token is shorter than {@link MIN_TOKEN_LENGTH}
 *   or two identities share one token (the audit trail could not tell them apart).
 */
export function httpCredentials(
  http: PitConfig['daemon']['http'],
  env: Record<string, string | undefined>,
): Credential[] {
  const named: Array<{ identity: string; variable: string }> = [
    { identity: OPERATOR_IDENTITY, variable: http.token_env },
    ...Object.entries(http.approvers).map(([identity, approver]) => ({
      identity,
      variable: approver.token_env,
    })),
  ];
  const credentials: Credential[] = [];
  for (const { identity, variable } of named) {
    const token = env[variable];
    if (!token) continue;
    const problem = tokenProblem(token);
    if (problem)
      throw new DaemonError(
        'DAEMON_CONFIG_INVALID',
        `${variable} (the HTTP token of ${identity}): ${problem}`,
      );
    const twin = credentials.find((credential) => credential.token === token);
    if (twin)
      throw new DaemonError(
        'DAEMON_CONFIG_INVALID',
        `${variable} (the HTTP token of ${identity}) is the same token as ${twin.identity}'s: give every identity its own token`,
      );
    credentials.push({ identity, token });
  }
  return credentials;
}

/** What is wrong with a token's value, or undefined. */
export function tokenProblem(token: string): string | undefined {
  if (token.length < MIN_TOKEN_LENGTH)
    return `must be at least ${MIN_TOKEN_LENGTH} characters (it has ${token.length}); generate one with \`openssl rand -hex 32\``;
  if (/\s/.test(token)) return 'must not contain white space';
  return undefined;
}

/**
 * Checks `Authorization: Bearer <token>` against every credential in constant time: each side
 * is hashed to equal length first and every credential is compared (no early exit), so neither
 * the content, the length, nor which identity matched leaks through timing.
 */
export function authorize(
  header: string | undefined,
  credentials: readonly Credential[],
): { ok: true; identity: string } | { ok: false; status: 401 | 403; reason: string } {
  if (credentials.length === 0)
    return {
      ok: false,
      status: 403,
      reason:
        'mutating calls are disabled: the daemon has no HTTP token (set the variable named by daemon.http.token_env or an approver token_env)',
    };
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match) return { ok: false, status: 401, reason: 'missing bearer token' };
  const given = createHash('sha256').update(match[1]!).digest();
  let identity: string | undefined;
  for (const credential of credentials) {
    const expected = createHash('sha256').update(credential.token).digest();
    if (timingSafeEqual(given, expected) && identity === undefined) identity = credential.identity;
  }
  if (identity === undefined) return { ok: false, status: 401, reason: 'invalid bearer token' };
  return { ok: true, identity };
}

/**
 * Whether a request's `Host` names this server: an IP literal equal to the address the connection
 * arrived on, or `localhost` on a loopback connection, with the server's port; or an entry of
 * `allowedHosts` (`name` matches any port, `name:port` that port only). A DNS-rebinding page
 * sends its own domain name, which matches none of these.
 */
export function isAllowedHost(options: {
  host: string | undefined;
  localAddress: string | undefined;
  port: number;
  allowedHosts: readonly string[];
}): boolean {
  const host = options.host?.trim().toLowerCase();
  if (!host) return false;
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(host);
  if (!match) return false;
  const name = match[1]!.replace(/^\[(.*)\]$/, '$1');
  const port = match[2] === undefined ? undefined : Number(match[2]);
  for (const entry of options.allowedHosts) {
    const wanted = entry.toLowerCase();
    if (wanted === name || wanted === `[${name}]`) return true;
    if (port !== undefined && (wanted === `${name}:${port}` || wanted === `[${name}]:${port}`))
      return true;
  }
  if (port !== options.port) return false;
  const local = (options.localAddress ?? '').replace(/^::ffff:/, '').toLowerCase();
  if (name === 'localhost') return isLoopbackHost(local);
  return isIP(name) !== 0 && name.replace(/^::ffff:/, '') === local;
}

/**
 * The address a connection is counted under for the per-address cap: an IPv4 address (an
 * IPv4-mapped IPv6 one unwrapped), or the /64 prefix of an IPv6 address (one host usually holds
 * the whole /64, so counting single addresses would not limit it).
 */
export function connectionAddressKey(address: string): string {
  const bare = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '').toLowerCase();
  if (isIP(bare) !== 6) return bare;
  const [head = '', tail] = bare.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}

/** Open connections counted per remote address (see {@link connectionAddressKey}). */
export interface AddressLimit {
  /** Counts a new connection from `address`: its key, or `undefined` when that address is at the cap (or unknown). */
  admit(address: string | undefined): string | undefined;
  /** Uncounts a connection admitted under `key`. */
  release(key: string): void;
}

/** A cap of `max` open connections per remote address, so one address cannot take every slot. */
export function createAddressLimit(max: number): AddressLimit {
  const open = new Map<string, number>();
  return {
    admit(address) {
      if (address === undefined) return undefined;
      const key = connectionAddressKey(address);
      const count = open.get(key) ?? 0;
      if (count >= max) return undefined;
      open.set(key, count + 1);
      return key;
    },
    release(key) {
      const count = (open.get(key) ?? 1) - 1;
      if (count <= 0) open.delete(key);
      else open.set(key, count);
    },
  };
}

/** Warnings about the HTTP settings in force (printed by `config check`, logged at start). */
export function httpWarnings(http: PitConfig['daemon']['http']): string[] {
  const warnings: string[] = [];
  if (http.enabled && http.allow_remote && !isLoopbackHost(listenHost(http.listen)))
    warnings.push(
      `daemon.http.allow_remote = true: ${remoteListenDanger(http.listen)}; put a TLS proxy in front and name its host in daemon.http.allowed_hosts`,
    );
  return warnings;
}
