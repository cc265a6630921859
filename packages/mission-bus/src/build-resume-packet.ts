import type { MissionBus } from './mission-bus.js';
import type { ResumePacket } from './resume-packet.js';

/**
 * The resume packet of a handoff: a function form of {@link MissionBus.buildResumePacket}.
 * @throws {BusError} BUS_NOT_FOUND when the bus has no such handoff.
 * @example
 * const packet = await buildResumePacket(bus, handoff.id);
 * // packet.checkpoint.state, packet.note, packet.workspace, packet.participants, packet.stream.resume_after
 */
export function buildResumePacket(bus: MissionBus, handoffId: string): Promise<ResumePacket> {
  return bus.buildResumePacket(handoffId);
}
