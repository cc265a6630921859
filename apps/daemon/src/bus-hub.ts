import {
  createBusServer,
  createToken,
  MissionBus,
  RoleSchema,
  type BusServer,
  type Role,
  type RoleOverrides,
} from '@pit/mission-bus';
import type { Logger } from './logger.js';

/** Options of {@link createBusHub}. */
export interface BusHubOptions {
  /** `host:port` of the WebSocket server; port 0 picks a free one. */
  listen: string;
  roles?: RoleOverrides;
  logger?: Logger;
}

/** The mission buses the daemon holds open and serves over WebSocket (one per supervised cell). */
export interface BusHub {
  /** `ws://host:port`. */
  readonly url: string;
  /** The cell's bus, opened (and served) on first use. */
  bus(cellDir: string): Promise<MissionBus>;
  /**
   * Registers an agent as a participant of its cell's bus with a fresh token (only its sha256
   * is stored) and returns what the agent needs to connect: `LAZARUS_BUS_URL`,
   * `LAZARUS_BUS_MISSION`, `LAZARUS_BUS_TOKEN`.
   */
  credentials(cellDir: string, agent: string, role: string): Promise<Record<string, string>>;
  /** Stops serving a cell (archived, destroyed) and closes its bus. */
  release(cellDir: string): Promise<void>;
  /** Stops the server and closes every bus. */
  close(): Promise<void>;
}

/**
 * Starts the bus hub: a @pit/mission-bus WebSocket server on `listen` to which each
 * supervised cell's bus is added as it is first needed.
 * @throws {BusError} when the server cannot listen.
 */
export async function createBusHub(options: BusHubOptions): Promise<BusHub> {
  const index = options.listen.lastIndexOf(':');
  const server: BusServer = await createBusServer({
    host: options.listen.slice(0, index).replace(/^\[(.*)\]$/, '$1'),
    port: Number(options.listen.slice(index + 1)),
    closeBuses: true,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const buses = new Map<string, Promise<MissionBus>>();
  const bus = (cellDir: string) => {
    let pending = buses.get(cellDir);
    if (!pending) {
      pending = MissionBus.open({
        cellDir,
        ...(options.roles ? { config: { roles: options.roles } } : {}),
        ...(options.logger ? { logger: options.logger } : {}),
      }).then((opened) => {
        server.addBus(opened);
        return opened;
      });
      buses.set(cellDir, pending);
      pending.catch(() => buses.delete(cellDir));
    }
    return pending;
  };
  return {
    url: server.url,
    bus,
    async credentials(cellDir, agent, role) {
      const opened = await bus(cellDir);
      const busRole: Role = RoleSchema.safeParse(role).success ? (role as Role) : 'write';
      const { token, sha256 } = createToken();
      await opened.registerParticipant({ name: agent, role: busRole });
      await opened.setToken(agent, sha256);
      return {
        LAZARUS_BUS_URL: server.url,
        LAZARUS_BUS_MISSION: opened.mission.id,
        LAZARUS_BUS_TOKEN: token,
      };
    },
    async release(cellDir) {
      const pending = buses.get(cellDir);
      if (!pending) return;
      buses.delete(cellDir);
      const opened = await pending.catch(() => undefined);
      if (!opened) return;
      server.removeBus(opened.mission.id);
      await opened.close();
    },
    async close() {
      await server.close();
      buses.clear();
    },
  };
}
