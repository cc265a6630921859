/**
 * Provider-aware revival in the loop: between @pit/policy's revive decision and its carrying
 * out, an agent that declares a `provider` is not restarted into an outage. `holdForProvider()`
 * asks policy's `decideProviderRevival()` and either lets the restart go ahead, holds it (a
 * `provider_wait` event and a wake-up: no restart, so nothing counted against the budget), or
 * asks for a switch to a fallback at the start (provider-switch.ts). It also wakes the agents
 * waiting on a provider when the matrix changes, switches live agents back to their primary
 * when configured, and gives the tracker the agents' heartbeats to read. It never starts a
 * process itself except through restart.ts, on the agent's queue. `providerServices()` builds
 * the tracker, its alerts and its file for the context, wired to the above.
 */
import { readHeartbeat } from '@pit/cell-spec';
import {
  classifyProviderError,
  decideProviderRevival,
  shouldSwitchBack,
  type Decision,
  type ProviderErrorClass,
} from '@pit/policy';
import { wakeAt } from './actions.js';
import { onSlotQueue } from './controls.js';
import { createProviderAlerts } from './provider-alerts.js';
import {
  createProviderTracker,
  type ProviderAgent,
  type ProviderChange,
} from './provider-health.js';
import { createProviderMatrixWriter } from './provider-matrix-file.js';
import {
  loadProviderRecord,
  providersOf,
  switchAtNextStart,
  switchProvider,
} from './provider-switch.js';
import { startAgent } from './restart.js';
import { startedByUsAt, type Slot } from './slot.js';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** Waits for a provider in a row, per agent (reset when it is restarted or healthy). */
const waits = new WeakMap<Slot, number>();
/** The end of the wait in progress (ms): until then a re-evaluation (every probe) holds quietly. */
const holding = new WeakMap<Slot, number>();

/**
 * Whether the revive decision is held for the agent's provider (true: not carried out now).
 * A switch to a fallback lets it go ahead with the switch asked for at the start.
 */
export async function holdForProvider(
  context: SupervisorContext,
  slot: Slot,
  decision: Decision,
  at: number,
): Promise<boolean> {
  if (decision.action !== 'restart' && decision.action !== 'rollback_and_restart') {
    if (slot.state.health !== 'dead') waits.delete(slot);
    holding.delete(slot);
    return false;
  }
  if ((holding.get(slot) ?? -Infinity) > at) return true;
  holding.delete(slot);
  await loadProviderRecord(context, slot);
  const providers = providersOf(slot);
  if (!providers || slot.supervision.mode !== 'managed') return false;
  await context.providers.refresh(providers.current, slot.exit?.at.getTime());
  const primaryConfig = context.config.providers[providers.current];
  const revival = decideProviderRevival({
    primary: providers.primary,
    fallbacks: providers.fallbacks,
    current: providers.current,
    providers: Object.fromEntries(
      [providers.primary, ...providers.fallbacks].map((name) => [
        name,
        context.providers.health(name),
      ]),
    ),
    canSwitch: providers.canSwitch,
    waits: waits.get(slot) ?? 0,
    backoff: {
      initial: (primaryConfig?.wait_initial_s ?? 5) * 1000,
      factor: 2,
      cap: (primaryConfig?.wait_cap_s ?? 300) * 1000,
    },
    ...(await reportedError(slot)),
    now: at,
  });
  if (revival.action === 'proceed') {
    waits.delete(slot);
    return false;
  }
  if (revival.action === 'switch') {
    waits.delete(slot);
    switchAtNextStart(slot, revival.to, revival.direction, revival.reason);
    context.providerAlerts.agentDown(revival.from, slot.name, `switched to ${revival.to}`);
    return false;
  }
  waits.set(slot, (waits.get(slot) ?? 0) + 1);
  context.providerAlerts.agentDown(revival.provider, slot.name, 'waiting for it');
  const since = context.providers.health(revival.provider)?.since;
  await context.events.agentEvent(slot, {
    event: 'provider_wait',
    provider: revival.provider,
    status: revival.status,
    until: iso(revival.until),
    reason: `${revival.reason}${since !== undefined ? ` (${revival.provider} ${revival.status} since ${iso(since)})` : ''}`,
  });
  slot.state.backoff_until = iso(revival.until);
  holding.set(slot, revival.until);
  if (slot.timer) clearTimeout(slot.timer);
  wakeAt(context, slot, revival.until);
  return true;
}

/** The class of the last provider error the agent reported, when its heartbeat has one. */
async function reportedError(slot: Slot): Promise<{ evidence?: ProviderErrorClass }> {
  if (!slot.cell) return {};
  const beat = await readHeartbeat(slot.cell.dir, slot.name).catch(() => undefined);
  if (!beat || (beat.provider_errors ?? 0) === 0) return {};
  const evidence = classifyProviderError(beat.last_error);
  return evidence === 'unknown' ? {} : { evidence };
}

/** What the tracker reads: every agent that declares a provider. */
export function* providerAgents(context: SupervisorContext): Iterable<ProviderAgent> {
  for (const slot of context.fleet.slots.values()) {
    const providers = providersOf(slot);
    if (!providers) continue;
    // The record of a switch made before this daemon started (read once; the next round sees it).
    void loadProviderRecord(context, slot);
    const startedAt = startedByUsAt(slot);
    yield {
      key: slot.key,
      name: slot.name,
      ...(slot.cell ? { cellDir: slot.cell.dir } : {}),
      providers: [providers.primary, ...providers.fallbacks],
      current: providers.current,
      ...(startedAt !== undefined ? { startedAt } : {}),
    };
  }
}

/** A provider's status changed: the dead agents that use it are looked at again at once. */
export function onProviderChange(context: SupervisorContext, change: ProviderChange): void {
  context.providerAlerts.changed(change);
  for (const slot of context.fleet.slots.values()) {
    const providers = providersOf(slot);
    if (!providers || slot.state.health !== 'dead') continue;
    if (![providers.primary, ...providers.fallbacks].includes(change.provider)) continue;
    if (!holding.has(slot)) continue;
    holding.delete(slot);
    if (slot.timer) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    void context.evaluateSoon(slot);
  }
}

/** After a round of the tracker: live agents on a fallback whose primary is back long enough go back. */
export function switchBackDue(context: SupervisorContext): void {
  if (context.stopped || context.dryRun) return;
  for (const slot of context.fleet.slots.values()) {
    const providers = providersOf(slot);
    if (!providers || slot.supervision.mode !== 'managed' || slot.state.health !== 'healthy')
      continue;
    const due = shouldSwitchBack({
      primary: providers.primary,
      current: providers.current,
      primaryHealth: context.providers.health(providers.primary),
      after: providers.switchBackAfter,
      now: context.now(),
    });
    if (due) void onSlotQueue(slot, () => switchBack(context, slot));
  }
}

async function switchBack(context: SupervisorContext, slot: Slot): Promise<void> {
  const providers = providersOf(slot);
  const supervision = slot.supervision;
  if (!providers || providers.current === providers.primary || supervision.mode !== 'managed')
    return;
  const seconds = Math.round((providers.switchBackAfter ?? 0) / 1000);
  const reason = `primary provider ${providers.primary} healthy for at least ${seconds} s`;
  if (!(await switchProvider(context, slot, { to: providers.primary, direction: 'back', reason })))
    return;
  // A planned restart onto the primary: not a revive, so not counted against the restart budget.
  await startAgent(context, slot, supervision.config, { reason, attempt: 0, initial: true });
}

/** Whether the agent's provider is in an outage people are told of (its death is not a storm's). */
export function downWithProvider(context: SupervisorContext, slot: Slot): boolean {
  const providers = providersOf(slot);
  return providers !== undefined && context.providerAlerts.inOutage(providers.current);
}

/** The reasons an agent carries for its providers (`primary_dead`, `primary_degraded`). */
export function providerStatusOf(
  context: SupervisorContext,
  slot: Slot,
):
  | { provider: { primary: string; current: string; status: string }; reasons: string[] }
  | undefined {
  const providers = providersOf(slot);
  if (!providers) return undefined;
  const status = context.providers.health(providers.primary)?.status ?? 'unknown';
  return {
    provider: { primary: providers.primary, current: providers.current, status },
    reasons: status === 'dead' || status === 'degraded' ? [`primary_${status}`] : [],
  };
}

/** The provider matrix and its outage alerts, over the context (read when they run, not now). */
export function providerServices(
  contextOf: () => SupervisorContext,
  options: { logger: SupervisorContext['logger']; now: () => number; stateDir: string },
): Pick<SupervisorContext, 'providers' | 'providerAlerts' | 'providerMatrixFile'> {
  const { logger, now } = options;
  const providerMatrixFile = createProviderMatrixWriter(options);
  return {
    providerMatrixFile,
    providers: createProviderTracker({
      providers: () => contextOf().config.providers,
      agents: () => providerAgents(contextOf()),
      logger,
      now,
      onChange: (change) => onProviderChange(contextOf(), change),
      afterTick: () => {
        const context = contextOf();
        switchBackDue(context);
        // For `pit status` with no daemon to ask: written in the background, only on a change.
        if (!context.dryRun) providerMatrixFile.offer(context.providers.matrix());
      },
    }),
    providerAlerts: createProviderAlerts({
      send: (kind, summary) => {
        const context = contextOf();
        const notice = context.notifier.notice;
        if (notice) context.notify(notice(kind, summary));
      },
      now,
    }),
  };
}

/** How often the provider matrix is looked at: the poll interval, or a provider's interval when shorter (≥ 100 ms). */
export function providerTickMs(context: SupervisorContext): number {
  const intervals = Object.values(context.config.providers).map((provider) => provider.interval_s);
  return Math.max(100, Math.min(context.config.cells.poll_interval_s, ...intervals) * 1000);
}
