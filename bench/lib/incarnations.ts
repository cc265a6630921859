/**
 * The agents of a benchmark as /proc shows them: every live process of a run's agents (marked by
 * a token in their argv), with the agent and the incarnation its own environment names
 * (`LAZARUS_AGENT`, and in a cluster `PIT_HOST`, `PIT_EPOCH`, which the daemon sets from the
 * claim that fenced the start); and the processes left under a run's directory, for cleanup.
 * Reads /proc synchronously: one scan of ten thousand processes takes well under a second.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** One live process of an agent. */
export interface AgentProcess {
  pid: number;
  agent: string;
  /** The host that started it (clustered daemons only). */
  host?: string;
  /** The epoch of its claim (clustered daemons only). */
  epoch?: number;
}

function pids(): number[] {
  return readdirSync('/proc').flatMap((entry) => (/^\d+$/.test(entry) ? [Number(entry)] : []));
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether `pid` is a zombie (killed, not reaped: here PID 1 reaps no orphans) or gone. */
function deadOrZombie(pid: number): boolean {
  const stat = readOr(`/proc/${pid}/stat`);
  if (!stat) return true;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}

/**
 * Every live (not zombie) process whose argv is `[<…/>program, token, …]`, with what its
 * environment says. A process whose environment cannot be read any more (it just exited) is left
 * out.
 */
export function agentProcesses(program: string, token: string): AgentProcess[] {
  const found: AgentProcess[] = [];
  for (const pid of pids()) {
    const argv = readOr(`/proc/${pid}/cmdline`)?.split('\0');
    if (!argv || argv[1] !== token) continue;
    if (argv[0] !== program && !argv[0]!.endsWith(`/${program}`)) continue;
    if (deadOrZombie(pid)) continue;
    const environ = readOr(`/proc/${pid}/environ`);
    if (!environ) continue;
    const env = new Map<string, string>();
    for (const entry of environ.split('\0')) {
      const equals = entry.indexOf('=');
      if (equals > 0) env.set(entry.slice(0, equals), entry.slice(equals + 1));
    }
    const agent = env.get('LAZARUS_AGENT');
    if (!agent) continue;
    const host = env.get('PIT_HOST');
    const epoch = env.get('PIT_EPOCH');
    found.push({
      pid,
      agent,
      ...(host ? { host } : {}),
      ...(epoch ? { epoch: Number(epoch) } : {}),
    });
  }
  return found;
}

/** `processes` grouped by agent. */
export function byAgent(processes: readonly AgentProcess[]): Map<string, AgentProcess[]> {
  const result = new Map<string, AgentProcess[]>();
  for (const process of processes) {
    const list = result.get(process.agent);
    if (list) list.push(process);
    else result.set(process.agent, [process]);
  }
  return result;
}

/** The agents with more than one live process, as `agent: pid@host#epoch, …` lines. */
export function doubles(processes: readonly AgentProcess[]): string[] {
  return [...byAgent(processes)]
    .filter(([, list]) => list.length > 1)
    .map(
      ([agent, list]) =>
        `${agent}: ${list.map((p) => `${p.pid}@${p.host ?? '-'}#${p.epoch ?? '-'}`).join(', ')}`,
    );
}

/**
 * SIGKILLs every live process whose working directory is under `dir` (a run's daemons, their
 * fences and agents, whichever group or session they are in), never a pid ≤ 1 or this process.
 * @returns how many were signalled.
 */
export function killProcessesUnder(dir: string): number {
  let killed = 0;
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  for (const pid of pids()) {
    if (pid <= 1 || pid === process.pid) continue;
    let cwd: string;
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      continue;
    }
    if (cwd !== dir && !cwd.startsWith(prefix)) continue;
    if (deadOrZombie(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed += 1;
    } catch {
      // already gone
    }
  }
  return killed;
}
