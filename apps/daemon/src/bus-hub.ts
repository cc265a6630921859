/**
 * The daemon's mission buses: one @pit/mission-bus WebSocket server and one open bus per
 * supervised cell, each with its authority store (participants, roles, token hashes) under the
 * daemon's state directory, `<state_dir>/bus/<cell uuid>/participants.json`, where agents cannot
 * write. A role is what the operator configured (`[bus.participants]`), what the daemon carried
 * over to a substitute, or what the mission's lead granted over the bus; never what the cell says.
 *
 * Clustered (`[cluster]`), each bus keeps its events in its mission's replicated JetStream stream
 * (`@pit/mission-bus/jetstream`, on a NATS connection this hub opens and closes), so that the
 * bus instances of one mission on several hosts deliver the same events in the same order; and a
 * write carrying an agent's `PIT_EPOCH` older than the epoch this host holds for it is refused.
 * Roles are the mission's, in the KV bucket `pit_bus_roles` (keyed by cell uuid and participant),
 * which every host's bus watches: a lead's grant through one host, or a substitute's role, holds
 * on every host, and on the host that takes an agent over. Tokens stay per host (each host's state
 * directory): an agent talks to the bus of the host that started it.
 */
import { basename, join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  createBusServer,
  createDirectoryParticipantStore,
  createToken,
  MissionBus,
  type BusEventLogFactory,
  type BusServer,
  type ParticipantStore,
  type Role,
  type RoleOverrides,
} from '@pit/mission-bus';
import type { Logger } from './logger.js';

/** Options of {@link createBusHub}. */
export interface BusHubOptions {
  /** `host:port` of the WebSocket server; port 0 picks a free one. */
  listen: string;
  /** The daemon's state directory: each cell's bus authority is kept in `<stateDir>/bus/<cell uuid>/`. */
  stateDir: string;
  roles?: RoleOverrides;
  logger?: Logger;
  /** `[cluster]`: keep every bus's events in a replicated JetStream stream. Absent: the cell's segment log. */
  cluster?: BusHubCluster;
}

/** What the hub needs of `[cluster]`. */
export interface BusHubCluster {
  /** NATS client URLs. */
  servers: string[];
  /** This host's id (names the NATS connection). */
  hostId: string;
  /** Replicas of each mission's stream (1, 3 or 5). */
  replicas: number;
  /** The NATS auth token, when the servers require one. */
  token?: string;
  /**
   * The epoch of the incarnation of agent `<cell uuid>/<name>` this host holds, if any (the
   * cluster member's `epochOf`): a bus write carrying an older `epoch` is refused, and one
   * carrying any `epoch` for an agent this host does not hold (taken over, let go): an agent
   * reaches only the bus of the host that started it (its token is in that host's store).
   */
  epochOf: (key: string) => number | undefined;
}

/** The mission buses the daemon holds open and serves over WebSocket (one per supervised cell). */
export interface BusHub {
  /** `ws://host:port`. */
  readonly url: string;
  /** The cell's bus, opened (and served) on first use. */
  bus(cellDir: string): Promise<MissionBus>;
  /**
   * Registers an agent as a participant of its cell's bus with a fresh token (only its sha256
   * is stored, in the daemon's state directory) and returns what the agent needs to connect:
   * `LAZARUS_BUS_URL`, `LAZARUS_BUS_MISSION`, `LAZARUS_BUS_TOKEN`. Its role: `configuredRole`
   * (the operator's `[bus.participants]`), else the role the bus's store holds (a lead's grant,
   * a substitution), else `write`.
   */
  credentials(
    cellDir: string,
    agent: string,
    configuredRole: Role | undefined,
  ): Promise<Record<string, string>>;
  /** Stops serving a cell (archived, destroyed) and closes its bus. */
  release(cellDir: string): Promise<void>;
  /** Stops the server and closes every bus. */
  close(): Promise<void>;
}

/** Where the daemon keeps a cell's bus participants, roles and token hashes: `<stateDir>/bus/<cell uuid>/`. */
export function busAuthority(stateDir: string, cellDir: string): ParticipantStore {
  return createDirectoryParticipantStore(join(stateDir, 'bus', basename(cellDir)));
}

/** `logger` with `fields` added to every line (so a bus's warnings name the cell). */
export function withFields(logger: Logger, fields: Record<string, unknown>): Logger {
  return {
    debug: (message, extra) => logger.debug(message, { ...fields, ...extra }),
    info: (message, extra) => logger.info(message, { ...fields, ...extra }),
    warn: (message, extra) => logger.warn(message, { ...fields, ...extra }),
    error: (message, extra) => logger.error(message, { ...fields, ...extra }),
  };
}

/**
 * Starts the bus hub: a @pit/mission-bus WebSocket server on `listen` to which each
 * supervised cell's bus is added as it is first needed.
 * @throws {BusError} when the server cannot listen.
 */
export async function createBusHub(options: BusHubOptions): Promise<BusHub> {
  const shared = options.cluster ? await openSharedLog(options.cluster, options.logger) : undefined;
  const index = options.listen.lastIndexOf(':');
  let server: BusServer;
  try {
    server = await createBusServer({
      host: options.listen.slice(0, index).replace(/^\[(.*)\]$/, '$1'),
      port: Number(options.listen.slice(index + 1)),
      closeBuses: true,
      ...(options.logger ? { logger: options.logger } : {}),
    });
  } catch (error) {
    await shared?.connection.close().catch(() => undefined);
    throw error;
  }
  const epochOf = options.cluster?.epochOf;
  const buses = new Map<string, Promise<MissionBus>>();
  const bus = (cellDir: string) => {
    let pending = buses.get(cellDir);
    if (!pending) {
      const local = busAuthority(options.stateDir, cellDir);
      pending = MissionBus.open({
        cellDir,
        authority: shared ? shared.roles(basename(cellDir), local) : local,
        ...(options.roles ? { config: { roles: options.roles } } : {}),
        ...(options.logger ? { logger: withFields(options.logger, { cell: cellDir }) } : {}),
        ...(shared ? { eventLog: shared.eventLog } : {}),
        ...(epochOf
          ? {
              currentEpoch: (participant: string) =>
                epochOf(`${basename(cellDir)}/${participant}`) ?? null,
            }
          : {}),
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
    async credentials(cellDir, agent, configuredRole) {
      const opened = await bus(cellDir);
      const role: Role = configuredRole ?? opened.roleOf(agent) ?? 'write';
      const { token, sha256 } = createToken();
      await opened.registerParticipant({ name: agent, role });
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
      try {
        await server.close();
      } finally {
        buses.clear();
        await shared?.connection.close().catch(() => undefined);
      }
    },
  };
}

/**
 * Connects to the cluster's NATS for the buses (a connection of their own: the coordination's
 * stays private to cluster/) and makes the JetStream log factory. Loaded only when clustered.
 */
async function openSharedLog(
  cluster: BusHubCluster,
  logger: Logger | undefined,
): Promise<{
  connection: NatsConnection;
  eventLog: BusEventLogFactory;
  roles: (scope: string, local: ParticipantStore) => ParticipantStore;
}> {
  const [{ connect }, { createJetStreamEventLog, createJetStreamRoleStores }] = await Promise.all([
    import('@nats-io/transport-node'),
    import('@pit/mission-bus/jetstream'),
  ]);
  const connection = await connect({
    servers: cluster.servers,
    name: `pit-bus-${cluster.hostId}`,
    timeout: 2_000,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    ...(cluster.token ? { token: cluster.token } : {}),
  }).catch((error: unknown) => {
    throw new Error(
      `[cluster] the mission buses cannot connect to NATS through ${cluster.servers.join(', ')}: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  });
  return {
    connection,
    eventLog: createJetStreamEventLog({ connection, replicas: cluster.replicas }),
    roles: createJetStreamRoleStores({
      connection,
      replicas: cluster.replicas,
      ...(logger ? { logger } : {}),
    }),
  };
}
