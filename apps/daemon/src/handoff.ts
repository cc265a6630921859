import { join } from 'node:path';
import { assertAgentName, writeFileAtomicBeneath } from '@pit/cell-spec';
import {
  MissionBus,
  SYSTEM_SENDER,
  type ParticipantStore,
  type ResumePacket,
  type Role,
  type RoleOverrides,
} from '@pit/mission-bus';
import { listCheckpoints } from '@pit/snapshot';
import type { Logger } from './logger.js';

/** What {@link publishHandoff} needs. */
export interface PublishHandoffOptions {
  cellDir: string;
  /** The dead agent. */
  from: string;
  /** The substitute taking over. */
  to: string;
  /**
   * The substitute's role as the operator configured it (`[bus.participants]`); left out, it
   * takes the dead agent's role on the bus (else `write`). Never a role read from the cell.
   */
  role?: Role;
  /** Where the bus keeps its participants and tokens (the daemon's state directory), when it is opened here. */
  authority?: ParticipantStore;
  /** Why (goes into the handoff's note). */
  note: string;
  roles?: RoleOverrides;
  logger?: Logger;
  /** Where the cell's workspace checkpoints are kept (the daemon's store). @default the cell's `checkpoints/` */
  checkpointStore?: string;
  /** The cell's bus when the daemon already holds it open (it stays open); otherwise it is opened and closed here. */
  bus?: MissionBus;
}

/** A published handoff. */
export interface PublishedHandoff {
  handoffId: string;
  /** Where the resume packet was written (`.lazarus/resume/<to>.json`). */
  packetPath: string;
  packet: ResumePacket;
}

/**
 * Hands a dead agent's work to its substitute on the mission bus: registers the substitute
 * with the dead agent's role, finds the dead agent's latest checkpoint on the bus (or
 * publishes one from `@pit` pointing at the cell's latest workspace checkpoint), publishes the
 * handoff, and writes the resume packet where the substitute can read it inside its cell.
 * @throws {BusError} when the bus cannot be opened (another process holds it) or refuses.
 */
export async function publishHandoff(options: PublishHandoffOptions): Promise<PublishedHandoff> {
  const bus =
    options.bus ??
    (await MissionBus.open({
      cellDir: options.cellDir,
      ...(options.authority ? { authority: options.authority } : {}),
      ...(options.roles ? { config: { roles: options.roles } } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    }));
  try {
    const held = bus.roleOf(options.from);
    const role: Role = options.role ?? held ?? 'write';
    // The dead agent must be a participant for the handoff to name it; one already registered keeps its role.
    if (held === undefined) await bus.registerParticipant({ name: options.from, role: 'write' });
    await bus.registerParticipant({ name: options.to, role });
    const latestWorkspace = (
      await listCheckpoints(
        options.cellDir,
        options.checkpointStore !== undefined ? { store: options.checkpointStore } : {},
      )
    ).checkpoints[0];
    const workspace = latestWorkspace
      ? { ts: latestWorkspace.name, sha256: latestWorkspace.manifest.sha256 }
      : undefined;
    const own = await bus.lastCheckpointOf(options.from);
    const checkpoint =
      own ??
      (await bus.checkpoint(SYSTEM_SENDER, {
        summary: `${options.from} died without a checkpoint of its own; resume from the workspace${workspace ? ` checkpoint ${workspace.ts}` : ' as it is'}`,
        state: null,
        ...(workspace ? { workspace } : {}),
      }));
    const handoff = await bus.handoff(SYSTEM_SENDER, {
      from: options.from,
      to: options.to,
      checkpoint: checkpoint.id,
      note: options.note,
      ...(workspace ? { workspace } : {}),
    });
    const packet = await bus.buildResumePacket(handoff.id);
    const packetPath = join(
      options.cellDir,
      '.lazarus',
      'resume',
      `${assertAgentName(options.to)}.json`,
    );
    // Beneath the cell: a `.lazarus` or `resume/` an agent made a link is refused, not written through.
    await writeFileAtomicBeneath(
      options.cellDir,
      packetPath,
      `${JSON.stringify(packet, null, 2)}\n`,
      {
        createParents: true,
      },
    );
    return { handoffId: handoff.id, packetPath, packet };
  } finally {
    if (!options.bus) await bus.close();
  }
}
