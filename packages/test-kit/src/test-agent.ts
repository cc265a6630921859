/** Where the shared test agent is: a real process that speaks the cell contract, for daemon, CLI and fault tests. */
import { fileURLToPath } from 'node:url';

/**
 * Absolute path of the test agent (plain Node, no build step). Started by the daemon in its
 * agent directory, it writes a heartbeat every 100 ms into its cell (atomically), reads
 * `--config FILE` as JSON (exits 78 when it does not parse), exits 3 after `--exit-after MS`,
 * reports a resume packet it is handed, and exits 0 on SIGTERM unless `--ignore-term`.
 *
 * @example
 * const argv = [process.execPath, testAgentPath, '--config', configFile];
 */
export const testAgentPath = fileURLToPath(new URL('../fixtures/test-agent.mjs', import.meta.url));
