/**
 * The one-shot sweep (`pit sweep --once`, cron): after discovery, every agent's probes run once,
 * each verdict is evaluated exactly as the loop would (same decisions, same actions), and every
 * write (records, history, events, notifications) is awaited before the report is returned.
 */
import { processStartedAtMs } from '@pit/probes';
import { countProbe, probesOf, trackAgent } from './agent-probes.js';
import { evaluateSoon } from './evaluation.js';
import { noticeComeback } from './recovery.js';
import type { Slot } from './slot.js';
import type { SweepReport } from './supervisor-api.js';
import type { SupervisorContext } from './supervisor-context.js';

/** Runs one sweep over the fleet; `settle` awaits notifications in flight; `problems` are the last pass's. */
export async function sweepFleet(
  context: SupervisorContext,
  settle: () => Promise<void>,
  problems: () => string[],
): Promise<SweepReport> {
  const started = process.hrtime.bigint();
  await context.approvals.expire(context.now());
  await context.sync('sweep');
  const report: SweepReport['agents'] = [];
  await Promise.all(
    [...context.fleet.slots.values()].map(async (slot) => {
      const { stopped } = slot.state;
      if (stopped) {
        // Stopped by the operator: not probed, not judged, not unhealthy.
        report.push({
          key: slot.key,
          health: slot.state.health,
          action: 'stopped',
          reason: `stopped by ${stopped.by} at ${stopped.at}`,
        });
        return;
      }
      await probeOnce(context, slot);
      await evaluateSoon(context, slot);
      const decision = slot.state.last_decision;
      report.push({
        key: slot.key,
        health: slot.state.health,
        ...(decision ? { action: decision.action, reason: decision.reason } : {}),
      });
    }),
  );
  await context.store.settle();
  await context.events.flush();
  await settle();
  const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
  context.metrics.sweepDuration.observe({}, durationMs / 1000);
  report.sort((a, b) => a.key.localeCompare(b.key));
  return {
    healthy: report.every((agent) => agent.health === 'healthy' || agent.action === 'stopped'),
    agents: report,
    problems: problems(),
    durationMs,
  };
}

async function probeOnce(context: SupervisorContext, slot: Slot): Promise<void> {
  const probes = probesOf(context, slot);
  // The startup grace runs from the process's real start: a just-started agent is not judged yet.
  const agentProcess = slot.process;
  const startedAt = agentProcess
    ? agentProcess.adopted
      ? await processStartedAtMs(agentProcess.startTime)
      : agentProcess.startedAt.getTime()
    : 0;
  trackAgent(context, slot, { startedAt: startedAt ?? 0, probes });
  for (const probe of probes) {
    const controller = new AbortController();
    const result = await probe.run(
      { signal: controller.signal, timeoutMs: probe.timeoutMs ?? 5000, now: context.now },
      { agent: slot.key, probe: probe.name, reason: 'manual' },
    );
    countProbe(context, result);
    context.assessor.record(slot.key, probe.name, result);
    // An agent started by hand since the last sweep is taken up (recovery.ts), before its evaluation.
    noticeComeback(context, slot, { probe: probe.name, result });
  }
}
