/**
 * A job that one host of the cluster does at a time (issue #16: polling the Telegram bot the
 * hosts share, since Telegram allows one `getUpdates` per bot). The role is claimed like an agent
 * (coordination.ts): its owner record `_role/<name>` in `pit_owners`, taken by compare-and-set
 * only when nobody holds it or its holder's host lease expired, so when the holder dies a live
 * host takes the role over within about the lease `T` (at its next tick, every `T/3`). The holder
 * re-reads the record at every tick and gives the role up when another host holds it, and at once
 * when it is fenced; a clean leave releases it. `held()` is false from the moment the lease is
 * unsafe (`fenced()` is read from the clock), not from when the fence timer runs: after a stall of
 * the event loop longer than the lease, another host may hold the role before that timer fires. Owns the claim loop only; what the role does is the
 * caller's (`onGain` / `onLose`).
 */
import type { Logger } from '../logger.js';
import type { Coordination } from './coordination.js';

/** Options of {@link holdRole}. */
export interface HoldRoleOptions {
  coordination: Coordination;
  /** The role's name (`[\w-]`), e.g. `telegram-poller`. */
  role: string;
  /** How often the claim is tried or checked (ms): the member's tick, `T/3`. */
  everyMs: number;
  logger: Logger;
  /** This host now holds the role. */
  onGain(): Promise<void> | void;
  /** This host no longer holds the role (another host does, it is fenced, or it leaves). */
  onLose(): Promise<void> | void;
}

/** A role this host tries to hold. */
export interface HeldRole {
  /** Whether this host holds the role now. */
  held(): boolean;
  /** Stops trying, gives the role up (`onLose` first) and releases its record. */
  stop(): Promise<void>;
}

/** The owner key of a role. */
export function roleKey(role: string): string {
  if (!/^[\w-]+$/.test(role))
    throw new Error(`role ${JSON.stringify(role)}: expected [A-Za-z0-9_-]`);
  return `_role/${role}`;
}

/** Tries to hold `role` now and at every tick (see the module header). */
export function holdRole(options: HoldRoleOptions): HeldRole {
  const { coordination, logger, role } = options;
  const key = roleKey(role);
  let epoch: number | undefined;
  let stopped = false;
  let ticking: Promise<void> | undefined;
  let changing: Promise<void> = Promise.resolve();
  const run = (what: 'gain' | 'lose') => {
    changing = changing.then(async () => {
      try {
        await (what === 'gain' ? options.onGain() : options.onLose());
      } catch (error) {
        logger.warn(`cluster role ${role}: ${what} failed`, { error: String(error) });
      }
    });
    return changing;
  };
  const lose = (why: string) => {
    if (epoch === undefined) return changing;
    epoch = undefined;
    logger.info(`cluster role ${role} given up: ${why}`, { host: coordination.hostId });
    return run('lose');
  };
  const pass = async () => {
    if (coordination.fenced()) {
      await lose('this host is fenced');
      return;
    }
    if (epoch !== undefined) {
      // NATS not answering is not a loss: the fence decides that.
      const current = await coordination.isCurrent(key, epoch).catch(() => undefined);
      if (current === false) await lose('another host holds it');
      return;
    }
    const claim = await coordination.claim(key);
    if (!claim.ok || stopped) return;
    epoch = claim.epoch;
    logger.info(`cluster role ${role} held by this host`, {
      host: coordination.hostId,
      epoch: claim.epoch,
      takeover: claim.takeover,
    });
    await run('gain');
  };
  const tick = () => {
    if (ticking || stopped) return;
    ticking = pass()
      .catch((error: unknown) =>
        logger.warn(`cluster role ${role}: claim failed; retrying at the next tick`, {
          error: String(error),
        }),
      )
      .finally(() => (ticking = undefined));
  };
  coordination.onFence(() => void lose('this host is fenced'));
  const timer = setInterval(tick, Math.max(50, options.everyMs));
  timer.unref();
  tick();
  return {
    held: () => epoch !== undefined && !coordination.fenced(),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await ticking;
      const held = epoch;
      await lose('this host leaves');
      if (held !== undefined) await coordination.release(key, held).catch(() => false);
    },
  };
}
