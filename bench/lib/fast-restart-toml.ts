/**
 * The pit.toml of an operator who wants fast restarts: one agent (`fixtures/stamp.cjs`, which
 * records its own start into `file`) outside cells, working in `dir`. Used by the
 * restart-latency bench and by diagnose/restart-trace.ts, so both measure the same daemon.
 */
import { fileURLToPath } from 'node:url';

const STAMP = fileURLToPath(new URL('../fixtures/stamp.cjs', import.meta.url));

export const fastRestartToml = (
  dir: string,
  file: string,
): string => `# pit.toml of the restart-latency benchmark: an operator who wants fast restarts.
[daemon]
state_dir = "state"
stop_agents_on_exit = true
standing_restarts = true        # the launcher restarts at the exit; the daemon confirms (default false)
[daemon.http]
enabled = false
[bus]
enabled = false
[cells]
root = "missions"
resurrect_after_s = 0           # act on a death at once (default 120 s)
max_revive_attempts = 1000
[checkpoints]
interval_s = 0
[policy.defaults]
rollback_before_restart = false # nothing to roll back
backoff = { initial = 0, jitter = 0 }                        # every restart immediate (default 10 s × 2)
restart_intensity = { max_restarts = 1000, window = "15m" }
[policy.fleet_brake]
enabled = false                 # one agent, killed on purpose again and again
[sandbox]
cgroup_favordynmods = true      # joining the agent's cgroup at a start costs 0.25 ms, not ~10 ms (default false)
[agents.stamp]
cell = "none"
cwd = ${JSON.stringify(dir)}
argv = [${JSON.stringify(process.execPath)}, ${JSON.stringify(STAMP)}, ${JSON.stringify(file)}]
stop_grace_s = 1
`;
