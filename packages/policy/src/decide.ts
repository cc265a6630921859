import { backoffState, nextBackoff } from './backoff.js';
import { classifyFailure, type Classification } from './classify-failure.js';
import type {
  AgentHealth,
  AgentHistory,
  AgentRef,
  ApprovalRecord,
  FleetView,
  RemedyAction,
} from './decide-input.js';
import type {
  ApprovalRequestDraft,
  AskDecision,
  Decision,
  DecisionCommon,
  DecisionRule,
  EscalateDecision,
  EscalationCause,
  NoneDecision,
  RestartDecision,
  SubstituteDecision,
  WaitCause,
  WaitDecision,
} from './decision.js';
import { formatDuration } from './duration.js';
import { PolicyError } from './errors.js';
import {
  assessFleetBrake,
  createFleetIndex,
  isFleetIndex,
  type BrakeStatus,
  type FleetIndex,
} from './fleet-index.js';
import { pickSubstitute } from './pick-substitute.js';
import type { PolicyConfig } from './policy-config.js';
import { resolvePolicyMemo, type AgentPolicy } from './resolve-policy.js';

/** Options of {@link decide}. Times are ms since the Unix epoch. */
export interface DecideOptions {
  /** The agent (a name, or a name with its cell's mission and whether it runs here). */
  agent: AgentRef | string;
  /** Its current health, from the assessor. */
  health: AgentHealth;
  /** What the Pit remembers about it (restarts, healthy stretches, the latest approval). @default {} */
  history?: AgentHistory;
  /** The rest of the fleet (substitutes, fleet brake); an index when deciding many agents at once. @default an empty fleet */
  fleet?: FleetView | FleetIndex;
  /** The current time (ms since epoch): the policy never reads the clock. */
  now: number;
  /**
   * A parsed policy config (`PolicyConfigSchema.parse` or `validatePolicy`). decide() freezes it
   * and remembers each agent's resolved policy per config object; parse a new one to change it.
   */
  config: PolicyConfig;
  /** Seed of the backoff jitter (mixed with the agent's name). @default 0 */
  seed?: number | string;
}

const HEALTH_RULES = {
  healthy: 'health.healthy',
  degraded: 'health.degraded',
  unknown: 'health.unknown',
} as const;
const HEALTH_WORDS = {
  healthy: 'is healthy',
  degraded: 'is degraded (alive; some probes failing): watching',
  unknown: 'has no verdict yet: watching',
} as const;

/** Everything the rules below need, computed once. */
interface Situation {
  name: string;
  restartable: boolean;
  /** It has config files to roll back (see `AgentRef.rollbackable`). */
  rollbackable: boolean;
  local: boolean;
  policy: AgentPolicy;
  fleet: FleetIndex;
  history: AgentHistory;
  now: number;
  seed: number | string;
  deadSince: number;
  /** The Pit saw the process end (`failure.exited`): `dead_after` does not apply. */
  exited: boolean;
  failure: Classification;
  failureReset?: number;
  brake?: BrakeStatus;
  /** `bezalel dead for 2m (crashed: exit code 1)` */
  header: string;
}

/**
 * Decides what to do about one agent, as an operator would: exactly one decision, with the rule
 * that fired and a reason naming the config key and the layer that set it. Pure: the same inputs
 * always give the same decision; no clock, no I/O, jitter from `seed`.
 *
 * For a dead agent, in order: a live substitute already covers it → `none`; a death the Pit
 * inferred (stale heartbeat, failing probes; not `failure.exited`) less than `dead_after` ago →
 * `wait` (an exit the Pit saw is acted on at once); mode `never` → `record_only`; an approval request (pending → `wait`,
 * approved → carry it out, denied → `record_only`, expired → `on_timeout`); the failure class's
 * action (`rate_limited` waits for its reset time, `record_only`, `ask`); then the mode: `ask`
 * asks, `substitute` (or a remote agent in `auto`) picks the first healthy substitute, `auto`
 * restarts (rolled back first if configured) — unless the restart intensity or revive attempts
 * are used up (`escalate`, to `ask`, then `record_only`), the backoff has not elapsed (`wait`),
 * or the fleet brake spaces starts (`wait`).
 * @throws {PolicyError} POLICY_BAD_INPUT when `now` is not a finite number.
 * @example
 * const decision = decide({
 *   agent: { name: 'bezalel', mission: 'forge' },
 *   health: { state: 'dead', since: now - 120_000, failure: { exit_code: 1 } },
 *   history: { restarts: [] },
 *   fleet: { agents: [{ name: 'allegro', state: 'healthy' }] },
 *   now,
 *   config,
 * });
 * // { action: 'rollback_and_restart', attempt: 1, rule: 'mode.auto', reason: 'bezalel dead for 2m …' }
 */
export function decide(options: DecideOptions): Decision {
  const { health, now, config } = options;
  if (typeof now !== 'number' || !Number.isFinite(now)) {
    throw new PolicyError(
      'POLICY_BAD_INPUT',
      `decide: now must be a finite number of ms since the epoch (got ${String(now)})`,
    );
  }
  const ref: AgentRef = typeof options.agent === 'string' ? { name: options.agent } : options.agent;
  const policy = resolvePolicyMemo(config, ref.name, ref.mission);
  const history = options.history ?? {};

  if (health.state !== 'dead') {
    const pending = history.approval?.status === 'pending' ? history.approval : undefined;
    const result: NoneDecision =
      health.state === 'healthy' && pending !== undefined
        ? {
            action: 'none',
            agent: ref.name,
            rule: 'approval.moot',
            reason: `${ref.name} is healthy again; approval request ${pending.id} is no longer needed: cancel it`,
            cancel_approval: pending.id,
            approval_id: pending.id,
            policy: policy.trace,
          }
        : {
            action: 'none',
            agent: ref.name,
            rule: HEALTH_RULES[health.state],
            reason: `${ref.name} ${HEALTH_WORDS[health.state]}; nothing to do`,
            policy: policy.trace,
          };
    if (policy.mission !== undefined) result.mission = policy.mission;
    return result;
  }

  const fleet = isFleetIndex(options.fleet)
    ? options.fleet
    : createFleetIndex(options.fleet ?? { agents: [] });
  const deadSince = Math.min(health.since ?? now, now);
  const failure = classifyFailure(
    health.failure === undefined
      ? { classify: config.classify }
      : { failure: health.failure, classify: config.classify },
  );
  const local = ref.local ?? true;
  const situation: Situation = {
    name: ref.name,
    local,
    restartable: ref.restartable ?? local,
    rollbackable: ref.rollbackable ?? true,
    policy,
    fleet,
    history,
    now,
    seed: options.seed ?? 0,
    deadSince,
    exited: health.failure?.exited === true,
    failure,
    header: `${ref.name} dead for ${formatDuration(now - deadSince)} (${failure.class}: ${failure.because})`,
  };
  if (health.failure?.reset_at !== undefined) situation.failureReset = health.failure.reset_at;
  const brake = assessFleetBrake({ fleet, agent: ref.name, now, brake: config.fleet_brake });
  if (brake !== undefined) situation.brake = brake;
  return decideDead(situation);
}

function decideDead(s: Situation): Decision {
  const { policy, history, now } = s;

  const standIn = history.substituted_by ?? s.fleet.substituteOf(s.name);
  if (standIn !== undefined) {
    const cover = s.fleet.get(standIn);
    if (cover !== undefined && cover.state !== 'dead') {
      return decision(
        s,
        'none',
        'substituted',
        `${s.header}; ${standIn} stands in for it (${cover.state}): nothing to do`,
      );
    }
  }

  // dead_after guards against acting on an inference; an exit the Pit saw needs no second look.
  if (!s.exited && now - s.deadSince < policy.dead_after) {
    return wait(s, {
      until: s.deadSince + policy.dead_after,
      wait_for: 'dead_after',
      rule: 'dead_after',
      reason: `${s.header}; dead_after=${formatDuration(policy.dead_after)} (${source(s, 'dead_after')}): not acting before then`,
    });
  }

  if (policy.mode === 'never') {
    return decision(
      s,
      'record_only',
      'mode.never',
      `${s.header}; mode=never (${source(s, 'mode')}): record only, never restart`,
    );
  }

  const approval = relevantApproval(s);
  if (approval !== undefined) {
    const answered = decideOnApproval(s, approval);
    if (answered !== undefined) return answered;
  }

  const classAction = policy.on_failure[s.failure.class];
  const classRule: DecisionRule = `on_failure.${s.failure.class}`;

  if (classAction === 'record_only')
    return decision(s, 'record_only', classRule, `${s.header}; ${classSetting(s)}: record only`);

  if (classAction === 'wait') {
    const until = s.failureReset ?? s.deadSince + policy.rate_limit_wait;
    if (now < until) {
      const why =
        s.failureReset !== undefined
          ? 'the reported reset time'
          : `rate_limit_wait=${formatDuration(policy.rate_limit_wait)} (${source(s, 'rate_limit_wait')})`;
      return wait(s, {
        until,
        wait_for: 'rate_limit',
        rule: classRule,
        reason: `${s.header}; ${classSetting(s)}: waiting until ${why}`,
        next: policy.mode === 'ask' ? 'ask' : restartKind(s, 'restart'),
      });
    }
  }

  const preferSubstitute =
    classAction === 'substitute' ||
    policy.mode === 'substitute' ||
    (!s.local && policy.mode === 'auto') ||
    !s.restartable;
  const choice = pickSubstitute({ agent: s.name, candidates: policy.substitutes, fleet: s.fleet });
  const requested: RemedyAction =
    classAction === 'rollback_and_restart' && s.rollbackable
      ? 'rollback_and_restart'
      : restartKind(s, 'restart');
  const proposed: RemedyAction =
    preferSubstitute && choice.substitute !== undefined ? 'substitute' : requested;

  if (policy.mode === 'ask' || classAction === 'ask') {
    const rule: DecisionRule = policy.mode === 'ask' ? 'mode.ask' : classRule;
    const setting = policy.mode === 'ask' ? `mode=ask (${source(s, 'mode')})` : classSetting(s);
    if (!s.restartable && choice.substitute === undefined)
      return escalate(s, 'no_remedy', noRemedyReason(s, choice.skipped), requested);
    return ask(s, {
      kind: 'revive',
      rule,
      proposed,
      substitute: choice.substitute,
      reasons: [s.header, `${setting}: asking before ${describe(proposed, choice.substitute)}`],
    });
  }

  let rule: DecisionRule = 'mode.auto';
  let note = `mode=auto (${source(s, 'mode')})`;
  if (classAction === 'substitute') {
    rule = classRule;
    note = classSetting(s);
  } else if (policy.mode === 'substitute') {
    rule = 'mode.substitute';
    note = `mode=substitute (${source(s, 'mode')})`;
  } else if (!s.local) {
    rule = 'remote.substitute';
    note = `${note}; runs on another host, so a substitute is preferred`;
  } else if (classAction === 'rollback_and_restart') {
    rule = classRule;
    note = s.rollbackable ? classSetting(s) : `${classSetting(s)}; no config files to roll back`;
  } else if (classAction === 'wait') {
    rule = classRule;
    note = `${classSetting(s)}; the reset time has passed`;
  }
  if (preferSubstitute && choice.substitute === undefined) {
    if (!s.restartable)
      return escalate(s, 'no_remedy', noRemedyReason(s, choice.skipped), requested);
    note = `${note}; no healthy substitute (${skippedText(choice.skipped, policy.substitutes)}), restarting instead`;
  }
  // carryOut picks the substitute again from the whole list, so the reason names those passed over.
  return carryOut(s, { action: proposed, substitute: undefined, rule, note, approved: false });
}

/** A pending request whatever its age; an answered one only if it belongs to this death. */
function relevantApproval(s: Situation): ApprovalRecord | undefined {
  const approval = s.history.approval;
  if (approval === undefined || approval.status === 'cancelled') return undefined;
  if (approval.status === 'pending' || approval.requested_at >= s.deadSince) return approval;
  return undefined;
}

/** Whether the Pit restarted the agent at or after `time` (the answer has been carried out). */
function restartedSince(s: Situation, time: number): boolean {
  return (s.history.restarts ?? []).some((at) => at >= time && at <= s.now);
}

function decideOnApproval(s: Situation, approval: ApprovalRecord): Decision | undefined {
  const prefix = approval.kind === 'escalation' ? 'escalation' : 'approval';
  const label = `${approval.kind === 'escalation' ? 'escalation' : 'approval'} request ${approval.id}`;
  const timedOut =
    approval.status === 'expired' ||
    (approval.status === 'pending' && s.now >= approval.expires_at);
  const withId = (result: Decision): Decision => {
    result.approval_id = approval.id;
    return result;
  };

  if (approval.status === 'pending' && !timedOut) {
    return withId(
      wait(s, {
        until: approval.expires_at,
        wait_for: 'approval',
        rule: `${prefix}.pending`,
        reason: `${s.header}; ${label} (${describe(approval.proposed, approval.substitute)}) awaits an answer until it expires`,
        next: approval.proposed,
      }),
    );
  }
  if (approval.status === 'denied') {
    return withId(
      decision(
        s,
        'record_only',
        `${prefix}.denied`,
        `${s.header}; ${label} was denied: record only until it recovers`,
      ),
    );
  }
  if (approval.status === 'approved') {
    if (restartedSince(s, approval.decided_at ?? approval.requested_at)) return undefined;
    const action = approval.action ?? approval.proposed;
    return withId(
      carryOut(s, {
        action,
        substitute: approval.substitute,
        rule: `${prefix}.approved`,
        note: `${label} was approved`,
        approved: true,
      }),
    );
  }
  if (timedOut) {
    if (restartedSince(s, approval.expires_at)) return undefined;
    if (approval.kind === 'escalation') {
      return withId(
        decision(
          s,
          'record_only',
          'escalation.expired',
          `${s.header}; ${label} expired unanswered: record only until it recovers`,
        ),
      );
    }
    const onTimeout = approval.on_timeout ?? s.policy.approval.on_timeout;
    const setting = `approval.on_timeout=${onTimeout} (${approval.on_timeout !== undefined ? 'as requested' : source(s, 'approval.on_timeout')})`;
    if (onTimeout === 'record_only') {
      return withId(
        decision(
          s,
          'record_only',
          'approval.expired',
          `${s.header}; ${label} expired unanswered; ${setting}: record only`,
        ),
      );
    }
    const action: RemedyAction =
      onTimeout === 'proceed' ? (approval.action ?? approval.proposed) : onTimeout;
    return withId(
      carryOut(s, {
        action,
        substitute: approval.substitute,
        rule: 'approval.expired',
        note: `${label} expired unanswered; ${setting}`,
        approved: false,
      }),
    );
  }
  return undefined;
}

interface CarryOut {
  action: RemedyAction;
  /** The substitute proposed or approved earlier (re-checked: it must still be healthy). */
  substitute: string | undefined;
  rule: DecisionRule;
  /** The clause naming the rule and setting that led here. */
  note: string;
  /** A human approved this: restart intensity, revive attempts and backoff do not apply (the fleet brake does). */
  approved: boolean;
}

/** Carries out a remedy, through the substitute check, the restart budget, the backoff and the fleet brake. */
function carryOut(s: Situation, plan: CarryOut): Decision {
  const { policy, now } = s;
  let note = plan.note;
  if (plan.action === 'substitute') {
    const candidates =
      plan.substitute !== undefined
        ? [plan.substitute, ...policy.substitutes.filter((name) => name !== plan.substitute)]
        : policy.substitutes;
    const choice = pickSubstitute({ agent: s.name, candidates, fleet: s.fleet });
    if (choice.substitute !== undefined) {
      const gated = brakeGate(s, plan.rule, note, 'substitute');
      if (gated !== undefined) return gated;
      const skipped =
        choice.skipped.length > 0
          ? ` (passed over ${choice.skipped.map((entry) => `${entry.name}: ${entry.why}`).join(', ')})`
          : '';
      const result = decision(
        s,
        'substitute',
        plan.rule,
        `${s.header}; ${note}: substitute ${choice.substitute}${skipped}${brakeNote(s)}`,
      ) as SubstituteDecision;
      result.substitute = choice.substitute;
      return result;
    }
    if (!s.restartable)
      return escalate(s, 'no_remedy', noRemedyReason(s, choice.skipped), restartKind(s, 'restart'));
    note = `${note}; no healthy substitute (${skippedText(choice.skipped, candidates)}), restarting instead`;
    return carryOut(s, { ...plan, action: restartKind(s, 'restart'), note });
  }

  if (!s.restartable) return escalate(s, 'no_remedy', noRemedyReason(s, []), plan.action);
  const backoff = backoffState({
    restarts: s.history.restarts,
    healthy: s.history.healthy,
    now,
    reset_after_stable: policy.backoff.reset_after_stable,
  });
  if (!plan.approved) {
    const { max_restarts, window } = policy.restart_intensity;
    let recent = 0;
    for (const at of s.history.restarts ?? []) if (at > now - window && at <= now) recent += 1;
    if (recent >= max_restarts) {
      return escalate(
        s,
        'restart_intensity',
        `${s.header}; ${recent} restarts within ${formatDuration(window)} reached restart_intensity.max_restarts=${max_restarts} (${source(s, 'restart_intensity.max_restarts')})`,
        plan.action,
      );
    }
    if (backoff.attempt >= policy.max_revive_attempts) {
      return escalate(
        s,
        'max_revive_attempts',
        `${s.header}; ${backoff.attempt} restarts without a stable period reached max_revive_attempts=${policy.max_revive_attempts} (${source(s, 'max_revive_attempts')})`,
        plan.action,
      );
    }
    const delay = nextBackoff({
      attempt: backoff.attempt,
      backoff: policy.backoff,
      seed: `${String(s.seed)}:${s.name}`,
    });
    const from = Math.max(s.deadSince, backoff.last_restart ?? s.deadSince);
    if (backoff.attempt > 0 && now < from + delay) {
      return wait(s, {
        until: from + delay,
        wait_for: 'backoff',
        rule: 'backoff',
        reason: `${s.header}; ${note}; backoff after ${backoff.attempt} restart${backoff.attempt === 1 ? '' : 's'} (backoff.initial=${formatDuration(policy.backoff.initial)}, factor ${policy.backoff.factor}, cap ${formatDuration(policy.backoff.cap)}; ${source(s, 'backoff.initial')}): restart #${backoff.attempt + 1} in ${formatDuration(from + delay - now)}`,
        next: plan.action,
      });
    }
  }
  const gated = brakeGate(s, plan.rule, note, plan.action);
  if (gated !== undefined) return gated;
  const rollback =
    plan.action === 'rollback_and_restart' ? ', config rolled back to last known good first' : '';
  const rollbackWhy =
    plan.action === 'rollback_and_restart' && !note.includes('rollback')
      ? ` (rollback_before_restart=${String(policy.rollback_before_restart)}, ${source(s, 'rollback_before_restart')})`
      : '';
  const result = decision(
    s,
    plan.action,
    plan.rule,
    `${s.header}; ${note}: restart #${backoff.attempt + 1}${rollback}${rollbackWhy}${brakeNote(s)}`,
  ) as RestartDecision;
  result.attempt = backoff.attempt + 1;
  return result;
}

/** While the fleet brake is engaged and this agent's start slot has not come, wait for it. */
function brakeGate(
  s: Situation,
  rule: DecisionRule,
  note: string,
  next: RemedyAction,
): WaitDecision | undefined {
  if (s.brake === undefined || s.now >= s.brake.slot) return undefined;
  return wait(s, {
    until: s.brake.slot,
    wait_for: 'fleet_brake',
    rule: 'fleet_brake',
    reason: `${s.header}; ${note}; ${s.brake.summary}: ${next === 'substitute' ? 'substitution' : 'restart'} held for ${formatDuration(s.brake.slot - s.now)} (was ${rule})`,
    next,
  });
}

function brakeNote(s: Situation): string {
  return s.brake === undefined ? '' : ` (${s.brake.summary})`;
}

/** Escalates: to `ask` when an approval channel exists, else to `record_only`; never silently. */
function escalate(
  s: Situation,
  why: EscalationCause,
  reason: string,
  proposed: RemedyAction,
): Decision {
  const channels = s.policy.approval.channels;
  if (why === 'no_remedy' || channels.length === 0) {
    const tail =
      why === 'no_remedy'
        ? ': nothing the Pit can do; record only'
        : ': no approval channel (approval.channels is empty), so record only';
    const result = decision(s, 'escalate', why, `${reason}${tail}`) as EscalateDecision;
    result.why = why;
    result.then = 'record_only';
    return result;
  }
  const choice = pickSubstitute({
    agent: s.name,
    candidates: s.policy.substitutes,
    fleet: s.fleet,
  });
  const request = requestDraft(s, {
    kind: 'escalation',
    proposed,
    substitute: choice.substitute,
    reasons: [
      reason,
      `approve to ${describe(proposed, undefined)} once more; no answer within ${formatDuration(s.policy.approval.timeout)} means record only`,
    ],
    on_timeout: 'record_only',
  });
  const result = decision(
    s,
    'escalate',
    why,
    `${reason}: escalating to ${channels.join(', ')}`,
  ) as EscalateDecision;
  result.why = why;
  result.then = 'ask';
  result.request = request;
  return result;
}

function ask(
  s: Situation,
  options: {
    kind: 'revive';
    rule: DecisionRule;
    proposed: RemedyAction;
    substitute: string | undefined;
    reasons: string[];
  },
): Decision {
  const { channels, on_timeout, timeout } = s.policy.approval;
  if (channels.length === 0) {
    return decision(
      s,
      'record_only',
      'no_approval_channel',
      `${options.reasons.join('; ')}; but approval.channels is empty (${source(s, 'approval.channels')}): record only`,
    );
  }
  const request = requestDraft(s, {
    kind: options.kind,
    proposed: options.proposed,
    substitute: options.substitute,
    reasons: [
      ...options.reasons,
      `no answer within ${formatDuration(timeout)}: ${on_timeout === 'proceed' ? describe(options.proposed, options.substitute) : on_timeout}`,
    ],
    on_timeout,
  });
  const result = decision(
    s,
    'ask',
    options.rule,
    `${options.reasons.join('; ')} (on ${channels.join(', ')})`,
  ) as AskDecision;
  result.request = request;
  return result;
}

function requestDraft(
  s: Situation,
  options: {
    kind: ApprovalRequestDraft['kind'];
    proposed: RemedyAction;
    substitute: string | undefined;
    reasons: string[];
    on_timeout: ApprovalRequestDraft['on_timeout'];
  },
): ApprovalRequestDraft {
  const request: ApprovalRequestDraft = {
    agent: s.name,
    kind: options.kind,
    proposed: options.proposed,
    reasons: options.reasons,
    channels: [...s.policy.approval.channels],
    requested_at: s.now,
    expires_at: s.now + s.policy.approval.timeout,
    on_timeout: options.on_timeout,
  };
  if (s.policy.mission !== undefined) request.mission = s.policy.mission;
  if (options.substitute !== undefined) request.suggested_substitute = options.substitute;
  return request;
}

function wait(
  s: Situation,
  options: {
    until: number;
    wait_for: WaitCause;
    rule: DecisionRule;
    reason: string;
    next?: WaitDecision['next'];
  },
): WaitDecision {
  const result = decision(s, 'wait', options.rule, options.reason) as WaitDecision;
  result.until = options.until;
  result.wait_for = options.wait_for;
  if (options.next !== undefined) result.next = options.next;
  return result;
}

/**
 * A fresh decision about a dead agent with what every one carries, in the order it always had
 * (agent, policy, mission?, failure, dead_for, brake?, action, rule, reason); callers add the
 * action's own fields to it. Written out as literals rather than spread from a shared object:
 * decide() makes one per call, and a spread plus the added keys cost more than the rule itself.
 */
function decision<A extends Decision['action']>(
  s: Situation,
  action: A,
  rule: DecisionRule,
  reason: string,
): DecisionCommon & { action: A } {
  const { name: agent, failure, brake } = s;
  const policy = s.policy.trace;
  const mission = s.policy.mission;
  const dead_for = s.now - s.deadSince;
  if (mission === undefined) {
    return brake === undefined
      ? { agent, policy, failure, dead_for, action, rule, reason }
      : { agent, policy, failure, dead_for, brake, action, rule, reason };
  }
  return brake === undefined
    ? { agent, policy, mission, failure, dead_for, action, rule, reason }
    : { agent, policy, mission, failure, dead_for, brake, action, rule, reason };
}

/** `restart` becomes `rollback_and_restart` when the policy rolls back before every restart. */
function restartKind(s: Situation, action: 'restart'): RemedyAction {
  return s.policy.rollback_before_restart && s.rollbackable ? 'rollback_and_restart' : action;
}

/**
 * `on_failure.crashed=restart (builtin)`: rendered only on the paths that name it (most dead
 * agents end in a wait or an escalation that does not).
 */
function classSetting(s: Situation): string {
  return `on_failure.${s.failure.class}=${s.policy.on_failure[s.failure.class]} (${source(s, `on_failure.${s.failure.class}`)})`;
}

/** `mode=auto (mission:forge)`: the layer that set a key. */
function source(s: Situation, key: string): string {
  return s.policy.trace.fields[key] ?? 'builtin';
}

function describe(action: RemedyAction, substitute: string | undefined): string {
  if (action === 'substitute')
    return substitute === undefined ? 'substituting' : `substituting ${substitute}`;
  return action === 'rollback_and_restart'
    ? 'rolling its config back and restarting'
    : 'restarting';
}

function skippedText(
  skipped: readonly { name: string; why: string }[],
  candidates: readonly string[],
): string {
  if (candidates.length === 0) return 'substitutes is empty';
  return skipped.map((entry) => `${entry.name}: ${entry.why}`).join(', ');
}

function noRemedyReason(s: Situation, skipped: readonly { name: string; why: string }[]): string {
  return `${s.header}; it cannot be restarted from here and has no healthy substitute (${skippedText(skipped, s.policy.substitutes)})`;
}
