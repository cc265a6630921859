/**
 * `@pit/mission-bus/jetstream`: the mission bus's event log on a replicated NATS JetStream stream,
 * and its roles in a replicated KV bucket, for buses of one mission on several hosts. A subpath of its own, so that a single-host bus never
 * loads the NATS client.
 */
export {
  createJetStreamEventLog,
  missionStream,
  type JetStreamEventLogOptions,
  type NatsConnection,
} from './jetstream-log.js';
export { createJetStreamRoleStores, type JetStreamRoleStoresOptions } from './jetstream-roles.js';
