/**
 * Where a bus's authority lives: who is a participant, with which role, and the sha256 of its
 * token. The bus's log records participant changes, but the log may sit where untrusted
 * participants can write, so a bus opened with a {@link ParticipantStore} takes roles and
 * tokens from the store only. The store is the caller's choice (the daemon keeps one per cell
 * under its state directory); this module never decides where it is.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { AgentNameSchema, readJsonFile, writeJsonAtomic } from '@pit/cell-spec';
import { z } from 'zod';
import { Sha256HexSchema } from './bus-event.js';
import { RoleSchema, type Role } from './roles.js';

/** One participant as the store knows it: its role (`null`: removed) and its token's sha256. */
export const StoredParticipantSchema = z.strictObject({
  role: RoleSchema.nullable(),
  token_sha256: Sha256HexSchema.optional(),
  /** Who granted the role last: `@pit` (the owner) or the name of the lead that granted it. */
  granted_by: z.string().min(1).max(128),
});
export type StoredParticipant = z.infer<typeof StoredParticipantSchema>;

/** The whole content of a participant store. */
export const ParticipantRosterSchema = z.strictObject({
  version: z.literal(1),
  participants: z.record(AgentNameSchema, StoredParticipantSchema),
});
export type ParticipantRoster = z.infer<typeof ParticipantRosterSchema>;

/** A participant's role as another bus instance of the mission changed it (see {@link ParticipantStore.watch}). */
export interface SharedRoleChange {
  name: string;
  /** `null`: removed. */
  role: Role | null;
  granted_by: string;
}

/**
 * Where a bus keeps its participants, roles and token hashes (see {@link MissionBus.open}'s
 * `authority`). `load` resolves `undefined` when nothing was stored yet.
 */
export interface ParticipantStore {
  /** Where the store is (a path), for messages. */
  readonly location: string;
  load(): Promise<ParticipantRoster | undefined>;
  save(roster: ParticipantRoster): Promise<void>;
  /**
   * Only a store shared by the bus instances of one mission on several hosts (such as
   * `@pit/mission-bus/jetstream`'s `createJetStreamRoleStores`): calls `onChange` for each role
   * another instance changes, from when it is called until the function it resolves to is
   * called. A change it already holds may be repeated. The bus applies each change to its roles
   * (never to its tokens, which stay per instance).
   */
  watch?(onChange: (change: SharedRoleChange) => void): Promise<() => Promise<void>>;
}

/**
 * A store kept as `<dir>/participants.json` (mode 0600, its directory created 0700). Put `dir`
 * where the bus's participants cannot write (the daemon uses `<state_dir>/bus/<cell uuid>`).
 * @example
 * const bus = await MissionBus.open({ cellDir, authority: createDirectoryParticipantStore('/var/lib/pit/bus/3f2a…') });
 */
export function createDirectoryParticipantStore(dir: string): ParticipantStore {
  const path = join(dir, 'participants.json');
  return {
    location: path,
    async load() {
      try {
        return await readJsonFile(path, ParticipantRosterSchema);
      } catch (error) {
        if ((error as { code?: string }).code === 'CELL_NOT_FOUND') return undefined;
        throw error;
      }
    },
    async save(roster) {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      await writeJsonAtomic(path, roster, { mode: 0o600 });
    },
  };
}
