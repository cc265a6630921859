/**
 * The moment a dead agent's work is handed to a substitute: the substitute joins the cell's
 * manifest with the dead agent's role, a handoff is published on the mission bus (with a resume
 * packet), both moments are written to the cell's event log, discovery takes the substitute up,
 * and it is started with the handoff in its environment. Only agents in cells are substituted.
 */
import { cellPaths, updateManifest } from '@pit/cell-spec';
import { busAuthority } from './bus-hub.js';
import { grant, updateMembers } from './membership.js';
import { checkpointStore } from './checkpoint-store.js';
import { publishHandoff } from './handoff.js';
import { startAgent } from './restart.js';
import type { Slot } from './slot.js';
import { iso, type SupervisorContext } from './supervisor-context.js';

/** Hands `slot`'s work to the agent `substituteName` in the same cell. */
export async function substitute(
  context: SupervisorContext,
  slot: Slot,
  substituteName: string,
  reason: string,
): Promise<void> {
  const cell = slot.cell;
  if (!cell) {
    await context.events.agentEvent(slot, {
      event: 'revive_failed',
      reason: `cannot substitute ${slot.name}: it has no cell`,
    });
    return;
  }
  if (context.dryRun) {
    context.logger.info('dry run: would substitute', {
      agent: slot.key,
      substitute: substituteName,
    });
    return;
  }
  const key = `${cell.uuid}/${substituteName}`;
  const role = cell.role;
  // The operator's config named this substitute; the grant lets discovery take it up in this cell.
  const granted = await updateMembers(
    context.stateDir,
    grant(cell.uuid, [substituteName], 'substitute', new Date(context.now())),
  ).then(
    () => true,
    async (error: unknown) => {
      await context.events.agentEvent(slot, {
        event: 'revive_failed',
        reason: `cannot record ${substituteName} as a member of the cell: ${error instanceof Error ? error.message : String(error)}`,
      });
      return false;
    },
  );
  if (!granted) return;
  context.fleet.heldBack.add(key);
  await updateManifest(cell.dir, (manifest) => {
    if (!manifest.agents.some((agent) => agent.name === substituteName))
      manifest.agents.push({ name: substituteName, role, joined_at: iso(context.now()) });
  });
  slot.state.substituted_by = substituteName;
  context.fleet.changed();
  const handoff = await handOver(context, slot, substituteName, reason);
  await context.events.agentEvent(slot, {
    event: 'agent_substituted',
    substitute: substituteName,
    reason,
    role,
    ...(handoff ? { handoff: handoff.handoffId, resume_packet: handoff.packetPath } : {}),
  });
  await context.events.append(
    cellPaths(cell.dir).events,
    { event: 'agent_joined', agent: substituteName, role, substituting_for: slot.name },
    key,
  );
  try {
    await context.sync(context.scheduler ? 'loop' : 'sweep');
  } finally {
    context.fleet.heldBack.delete(key);
  }
  const created = context.fleet.slots.get(key);
  if (
    created &&
    created.supervision.mode === 'managed' &&
    (!created.process || created.process.exit)
  ) {
    await startAgent(context, created, created.supervision.config, {
      reason: `substituting for ${slot.name}`,
      attempt: 0,
      initial: true,
      env: handoff
        ? { LAZARUS_HANDOFF_ID: handoff.handoffId, LAZARUS_RESUME_PACKET: handoff.packetPath }
        : {},
    });
  }
}

/** Publishes the handoff on the mission bus; a failure is logged and the substitute starts without one. */
async function handOver(
  context: SupervisorContext,
  slot: Slot,
  substituteName: string,
  reason: string,
): Promise<{ handoffId: string; packetPath: string } | undefined> {
  const cell = slot.cell;
  if (!cell) return undefined;
  try {
    const bus = context.busHub ? await context.busHub.bus(cell.dir) : undefined;
    return await publishHandoff({
      cellDir: cell.dir,
      from: slot.name,
      to: substituteName,
      ...(context.config.bus.participants[substituteName]
        ? { role: context.config.bus.participants[substituteName] }
        : {}),
      authority: busAuthority(context.config.daemon.state_dir, cell.dir),
      note: reason,
      checkpointStore: checkpointStore(context.stateDir, cell.uuid),
      ...(context.config.bus.roles ? { roles: context.config.bus.roles } : {}),
      logger: context.logger,
      ...(bus ? { bus } : {}),
    });
  } catch (error) {
    context.logger.error('cannot publish the handoff on the mission bus', {
      agent: slot.key,
      substitute: substituteName,
      error: error instanceof Error ? error.message : String(error),
    });
    return undefined;
  }
}
