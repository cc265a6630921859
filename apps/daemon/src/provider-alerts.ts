/**
 * One alert per provider outage: when a provider is dead and agents go down with it, people get
 * one message naming the provider and every agent held or switched (gathered until no agent
 * has joined for `settleMs`, at most `maxGatherMs` after the first), and one recovery message
 * when the provider is healthy again, naming the same agents. Deaths in an outage are not also
 * counted by the storm detector (actions.ts asks {@link inOutage}). It sends through the
 * notifier's `notice()`; it decides nothing about agents.
 */
import type { ProviderChange } from './provider-health.js';

/** What an outage alert goes out through. */
export interface ProviderAlertsOptions {
  send(kind: 'notice' | 'recovery', summary: string): void;
  now: () => number;
  /** @default 1000 */
  settleMs?: number;
  /** @default 10000 */
  maxGatherMs?: number;
}

interface Outage {
  since: number;
  agents: Map<string, string>;
  sent: boolean;
  timer: NodeJS.Timeout | undefined;
  firstAt: number | undefined;
}

/** See the module header. */
export interface ProviderAlerts {
  /** A provider changed status. */
  changed(change: ProviderChange): void;
  /** An agent went down with `provider` (held for it, or switched away from it). */
  agentDown(provider: string, agent: string, how: string): void;
  /** Whether `provider` is in an outage now. */
  inOutage(provider: string): boolean;
  close(): void;
}

const MAX_LISTED = 50;

/** Creates the outage alerts (see the module header). */
export function createProviderAlerts(options: ProviderAlertsOptions): ProviderAlerts {
  const outages = new Map<string, Outage>();
  const settleMs = options.settleMs ?? 1000;
  const maxGatherMs = options.maxGatherMs ?? 10_000;
  const list = (outage: Outage) => {
    const entries = [...outage.agents.entries()];
    const shown = entries.slice(0, MAX_LISTED).map(([agent, how]) => `${agent} (${how})`);
    return `${shown.join(', ')}${entries.length > MAX_LISTED ? `, … and ${entries.length - MAX_LISTED} more` : ''}`;
  };
  const send = (provider: string, outage: Outage) => {
    if (outage.timer) clearTimeout(outage.timer);
    outage.timer = undefined;
    if (outage.sent || outage.agents.size === 0) return;
    outage.sent = true;
    options.send(
      'notice',
      `provider ${provider} is dead since ${new Date(outage.since).toISOString()}: ${outage.agents.size} agent${outage.agents.size === 1 ? '' : 's'} down with it: ${list(outage)}`.slice(
        0,
        1000,
      ),
    );
  };
  return {
    changed(change) {
      const outage = outages.get(change.provider);
      if (change.to === 'dead' && !outage) {
        outages.set(change.provider, {
          since: Date.parse(change.entry.since),
          agents: new Map(),
          sent: false,
          timer: undefined,
          firstAt: undefined,
        });
        return;
      }
      if (change.to !== 'healthy' || !outage) return;
      outages.delete(change.provider);
      if (!outage.sent) send(change.provider, outage);
      if (!outage.sent) return;
      const seconds = Math.round((options.now() - outage.since) / 1000);
      options.send(
        'recovery',
        `provider ${change.provider} is healthy again after ${seconds} s; its agents are revived: ${list(outage)}`.slice(
          0,
          1000,
        ),
      );
    },
    agentDown(provider, agent, how) {
      const outage = outages.get(provider);
      if (!outage || outage.agents.has(agent)) return;
      outage.agents.set(agent, how);
      if (outage.sent) return;
      const now = options.now();
      outage.firstAt ??= now;
      if (outage.timer) clearTimeout(outage.timer);
      const delay = Math.max(0, Math.min(settleMs, outage.firstAt + maxGatherMs - now));
      outage.timer = setTimeout(() => send(provider, outage), delay);
      outage.timer.unref();
    },
    inOutage: (provider) => outages.has(provider),
    close() {
      for (const [provider, outage] of outages) send(provider, outage);
    },
  };
}
