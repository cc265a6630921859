/**
 * `@pit/daemon/cluster`: this daemon as a member of a cluster coordinated through NATS JetStream
 * (cluster/), kept out of the main entry so that nothing loads the NATS client unless `[cluster]`
 * is set: the daemon imports it when it joins, a harness or a benchmark through this entry.
 */
export {
  joinCluster,
  type ClusterHooks,
  type ClusterMember,
  type ClusterMemberOptions,
  type ClusterView,
} from './cluster/cluster-member.js';
export {
  openCoordination,
  rankHosts,
  type ClaimResult,
  type Coordination,
  type CoordinationOptions,
  type HostLease,
  type OwnerRecord,
} from './cluster/coordination.js';
