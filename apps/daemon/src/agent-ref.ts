/**
 * Which supervised agent an operator's reference names (`pit restart|stop|start|reset AGENT`,
 * the HTTP API): `name`, or `cell/name` where `cell` is a cell's uuid, a unique prefix of it,
 * its mission, or `host` for an agent outside cells. An ambiguous reference is refused with the
 * candidates, never guessed. Pure.
 */

/** An agent a reference can name (an entry of the fleet's status). */
export interface AgentRefCandidate {
  key: string;
  agent: string;
  cell?: string;
  mission?: string;
}

/** The agent a reference names, or why none. */
export type AgentRefResolution =
  | { ok: true; key: string }
  | { ok: false; reason: 'not_found' | 'ambiguous'; message: string; candidates: string[] };

/** How a candidate is written so that it names itself alone: `<cell uuid>/<name>` or `host/<name>`. */
const spelled = (candidate: AgentRefCandidate) =>
  `${candidate.cell ?? 'host'}/${candidate.agent}${candidate.mission ? ` (mission ${candidate.mission})` : ''}`;

/**
 * Resolves `ref` among `candidates`.
 * @example
 * resolveAgentRef('forge', status.agents); // { ok: true, key: '3f2a…/forge' } when one forge runs
 */
export function resolveAgentRef(
  ref: string,
  candidates: readonly AgentRefCandidate[],
): AgentRefResolution {
  const slash = ref.lastIndexOf('/');
  const name = slash === -1 ? ref : ref.slice(slash + 1);
  const scope = slash === -1 ? undefined : ref.slice(0, slash);
  const named = candidates.filter((candidate) => candidate.agent === name);
  const matches =
    scope === undefined
      ? named
      : named.filter((candidate) =>
          scope === 'host'
            ? candidate.cell === undefined
            : candidate.cell !== undefined &&
              (candidate.cell.startsWith(scope.toLowerCase()) || candidate.mission === scope),
        );
  if (matches.length === 1) return { ok: true, key: matches[0]!.key };
  if (matches.length === 0) {
    const known = [...new Set(candidates.map((candidate) => candidate.agent))].sort();
    return {
      ok: false,
      reason: 'not_found',
      message:
        named.length > 0
          ? `no agent ${name} in ${JSON.stringify(scope)}; ${name} is in: ${named.map(spelled).join(', ')}`
          : `no supervised agent named ${JSON.stringify(name)} (known: ${known.join(', ') || 'none'})`,
      candidates: named.map(spelled),
    };
  }
  return {
    ok: false,
    reason: 'ambiguous',
    message: `${ref} names ${matches.length} agents: say which as CELL/${name} (a cell uuid or unique prefix, or a mission): ${matches.map(spelled).join(', ')}`,
    candidates: matches.map(spelled),
  };
}
