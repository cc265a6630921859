/**
 * Provider-aware revival, pure: what to do about a dead agent given the health of the model
 * providers it can run on (the daemon's provider matrix), and when an agent running on a
 * fallback goes back to its primary. An agent is never restarted into an outage: it waits for
 * its provider (a bounded backoff that is not a restart, so not counted against its restart
 * budget) or is switched to a healthy fallback. It also classifies a provider error an agent
 * reported (rate limit, outage, auth). No I/O, no clock: time is an argument.
 */

/** A provider's health as the daemon's matrix has it. */
export type ProviderStatus = 'healthy' | 'degraded' | 'dead' | 'unknown';

/** One provider's entry in the matrix. */
export interface ProviderHealth {
  status: ProviderStatus;
  /** Since when it has this status (ms since the epoch). */
  since: number;
}

/** What kind of provider error an agent reported. */
export type ProviderErrorClass = 'rate_limit' | 'outage' | 'auth' | 'unknown';

/** Bounds of the wait for a provider (ms). */
export interface ProviderWaitBackoff {
  /** The first wait. */
  initial: number;
  /** Each further wait is this many times longer. */
  factor: number;
  /** No wait is longer. */
  cap: number;
}

/** What {@link decideProviderRevival} takes. */
export interface ProviderRevivalInput {
  /** The agent's primary provider (`[agents.<name>] provider`). */
  primary: string;
  /** Its fallbacks, in order of preference. */
  fallbacks: readonly string[];
  /** The provider its config selects now (the primary, or the fallback it was switched to). */
  current: string;
  /** The matrix; a provider missing from it is `unknown`. */
  providers: Readonly<Record<string, ProviderHealth | undefined>>;
  /** Whether the daemon can switch the agent's config (it has `provider_files` for the target). */
  canSwitch: (provider: string) => boolean;
  /** Waits for a provider in a row in this death so far (0 for the first). */
  waits: number;
  backoff: ProviderWaitBackoff;
  /** What the agent's last provider error was, when it reported one. */
  evidence?: ProviderErrorClass;
  now: number;
}

/** What to do about a dead agent, as far as its providers go. */
export type ProviderRevival =
  /** Revive it as the revive policy says, on the provider it is on. */
  | { action: 'proceed'; reason: string }
  /** Do not restart it: look again at `until` (not a restart, not counted). */
  | { action: 'wait'; provider: string; status: 'degraded' | 'dead'; until: number; reason: string }
  /** Switch its config to `to`, then revive it. */
  | { action: 'switch'; from: string; to: string; direction: 'fallback' | 'back'; reason: string };

const statusOf = (input: ProviderRevivalInput, provider: string): ProviderStatus =>
  input.providers[provider]?.status ?? 'unknown';

/** The delay of wait number `waits` (0-based): `min(cap, initial × factor^waits)`. */
export function providerWaitDelay(backoff: ProviderWaitBackoff, waits: number): number {
  return Math.round(Math.min(backoff.cap, backoff.initial * Math.pow(backoff.factor, waits)));
}

/**
 * Decides how a dead agent is revived with respect to its providers. In order:
 * 1. an `auth` error is the agent's own (credentials, config): proceed (a rollback may fix it);
 * 2. the provider it is on is dead (or its own report says outage while the matrix knows
 *    nothing): switch to the first healthy provider among primary then fallbacks that its
 *    config can select; with none, wait;
 * 3. it is on a fallback and the primary is healthy: switch back while reviving;
 * 4. a `rate_limit` report: wait once (a restart does not lift a rate limit);
 * 5. otherwise proceed.
 * @example
 * decideProviderRevival({ primary: 'a', fallbacks: ['b'], current: 'a',
 *   providers: { a: { status: 'dead', since: 0 }, b: { status: 'healthy', since: 0 } },
 *   canSwitch: () => true, waits: 0, backoff: { initial: 5000, factor: 2, cap: 300000 }, now: 1 });
 * // { action: 'switch', from: 'a', to: 'b', direction: 'fallback', … }
 */
export function decideProviderRevival(input: ProviderRevivalInput): ProviderRevival {
  const { current, primary } = input;
  if (input.evidence === 'auth')
    return {
      action: 'proceed',
      reason: `its last provider error was an authentication error: ${current} is not the cause`,
    };
  const currentStatus = statusOf(input, current);
  const outage =
    currentStatus === 'dead' || (currentStatus === 'unknown' && input.evidence === 'outage');
  if (outage) {
    const target = [primary, ...input.fallbacks].find(
      (provider) =>
        provider !== current &&
        statusOf(input, provider) === 'healthy' &&
        input.canSwitch(provider),
    );
    const why =
      currentStatus === 'dead'
        ? `provider ${current} is dead`
        : `the agent reported an outage of ${current}`;
    if (target !== undefined)
      return {
        action: 'switch',
        from: current,
        to: target,
        direction: target === primary ? 'back' : 'fallback',
        reason: `${why}; ${target} is healthy`,
      };
    const delay = providerWaitDelay(input.backoff, input.waits);
    return {
      action: 'wait',
      provider: current,
      status: 'dead',
      until: input.now + delay,
      reason: `${why} and no healthy fallback: waiting ${Math.round(delay / 1000)} s (not counted as a restart)`,
    };
  }
  if (current !== primary && statusOf(input, primary) === 'healthy' && input.canSwitch(primary))
    return {
      action: 'switch',
      from: current,
      to: primary,
      direction: 'back',
      reason: `primary provider ${primary} is healthy again`,
    };
  if (input.evidence === 'rate_limit' && input.waits === 0) {
    const delay = providerWaitDelay(input.backoff, 0);
    return {
      action: 'wait',
      provider: current,
      status: 'degraded',
      until: input.now + delay,
      reason: `the agent was rate limited by ${current}: waiting ${Math.round(delay / 1000)} s before a restart`,
    };
  }
  return { action: 'proceed', reason: `provider ${current} is ${currentStatus}` };
}

/** What {@link shouldSwitchBack} takes. */
export interface SwitchBackInput {
  primary: string;
  current: string;
  primaryHealth: ProviderHealth | undefined;
  /** How long the primary must have been healthy (ms); undefined: never switch back by itself. */
  after: number | undefined;
  now: number;
}

/**
 * Whether a live agent running on a fallback goes back to its primary now: only when switching
 * back is configured and the primary has been healthy for at least `after`.
 */
export function shouldSwitchBack(input: SwitchBackInput): boolean {
  if (input.after === undefined || input.current === input.primary) return false;
  const health = input.primaryHealth;
  return health?.status === 'healthy' && input.now - health.since >= input.after;
}

const AUTH =
  /\b(401|403)\b|unauthori[sz]ed|forbidden|invalid[ _-]?(api[ _-]?)?key|authentication|permission denied/i;
const RATE = /\b429\b|rate[ _-]?limit|too many requests|quota/i;
const OUTAGE =
  /\b(500|502|503|504|529)\b|overloaded|unavailable|outage|timed? ?out|econnrefused|econnreset|enotfound|bad gateway|internal server error/i;

/**
 * Classifies a provider error an agent reported (its heartbeat's `last_error`), by the usual
 * HTTP statuses and wording: `auth` (401, 403, invalid key), `rate_limit` (429, quota),
 * `outage` (5xx, 529 overloaded, unavailable, timeouts, connection refused), else `unknown`.
 * @example
 * classifyProviderError('HTTP 529 overloaded_error'); // 'outage'
 */
export function classifyProviderError(message: string | undefined): ProviderErrorClass {
  if (message === undefined || message === '') return 'unknown';
  if (AUTH.test(message)) return 'auth';
  if (RATE.test(message)) return 'rate_limit';
  if (OUTAGE.test(message)) return 'outage';
  return 'unknown';
}
