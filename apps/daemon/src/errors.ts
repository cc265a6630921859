import { PitError, type PitErrorOptions } from '@pit/cell-spec';

/** Error codes of the daemon. A code is public API (the CLI maps them to exit codes). */
export type DaemonErrorCode =
  | 'DAEMON_CONFIG_NOT_FOUND' // an explicitly named config file does not exist
  | 'DAEMON_CONFIG_INVALID' // the config does not parse or breaks the schema (every problem listed)
  | 'DAEMON_CONFIG_UNSAFE' // the config file or a parent directory is writable by others (StrictModes)
  | 'DAEMON_LOCKED' // another daemon holds the state directory
  | 'DAEMON_SPAWN_FAILED' // an agent could not be started
  | 'DAEMON_ISOLATION_UNAVAILABLE' // the isolation level needs a tool that is missing (unshare, podman)
  | 'DAEMON_UNSAFE_SIGNAL' // refused to signal a pid ≤ 1
  | 'DAEMON_HTTP' // the HTTP server could not listen
  | 'DAEMON_CLUSTER' // [cluster]: NATS unreachable, its JetStream cluster not formed in time, its token unset, or a one-shot sweep asked of a cluster
  | 'DAEMON_IO'; // the filesystem refused

/** One problem in a config file (see `parseConfig`). */
export interface DaemonErrorProblem {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** Options of {@link DaemonError}. */
export interface DaemonErrorOptions extends PitErrorOptions {
  /** DAEMON_CONFIG_INVALID: every problem found. */
  problems?: DaemonErrorProblem[];
}

/** The error thrown by @pit/daemon. */
export class DaemonError extends PitError<DaemonErrorCode> {
  /** DAEMON_CONFIG_INVALID: every problem found, with its key path and position. */
  readonly problems: DaemonErrorProblem[];
  constructor(code: DaemonErrorCode, message: string, options: DaemonErrorOptions = {}) {
    super(code, message, options);
    this.problems = options.problems ?? [];
  }
}
