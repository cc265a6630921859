import { describe, expect, it } from 'vitest';
import { createAssessor } from './assessor.js';
import { ProbeError } from './errors.js';
import type { ProbeFailure, ProbeResult } from './probe-result.js';

const T0 = 1_800_000_000_000;

function sample(ok: boolean, at: number, failure: ProbeFailure = 'timeout'): ProbeResult {
  return {
    kind: 'test',
    ok,
    latencyMs: 1,
    observedAt: at,
    detail: ok ? 'fine' : `broken at ${at}`,
    ...(ok ? {} : { failure }),
  };
}

describe('createAssessor', () => {
  it('note() folds a sample as record() does and says only the health and whether it changed', () => {
    const noted = createAssessor({ failureThreshold: 2 });
    const recorded = createAssessor({ failureThreshold: 2 });
    const samples = [true, false, false, true, false, false, false].map((ok, index) =>
      sample(ok, T0 + index * 1_000),
    );
    for (const result of samples) {
      const full = recorded.record('forge', 'http', result);
      expect(noted.note('forge', 'http', result)).toEqual({
        health: full.health,
        changed: full.changed,
      });
    }
    expect(noted.get('forge')).toEqual(recorded.get('forge'));
  });

  it('turns dead only after failureThreshold consecutive failures', () => {
    const assessor = createAssessor({ failureThreshold: 3 });
    expect(assessor.record('forge', 'http', sample(true, T0))).toMatchObject({
      health: 'healthy',
      changed: true,
      previous: 'unknown',
    });
    expect(assessor.record('forge', 'http', sample(false, T0 + 1_000)).health).toBe('healthy');
    expect(assessor.record('forge', 'http', sample(false, T0 + 2_000)).health).toBe('healthy');
    const dead = assessor.record('forge', 'http', sample(false, T0 + 3_000));
    expect(dead).toMatchObject({
      health: 'dead',
      previous: 'healthy',
      changed: true,
      since: T0 + 3_000,
      firstFailedAt: T0 + 1_000,
      failing: ['http'],
    });
    expect(dead.reason).toBe(
      `dead: critical probe http (3 consecutive; timeout: broken at ${T0 + 3_000}) failing`,
    );
    expect(assessor.record('forge', 'http', sample(false, T0 + 4_000))).toMatchObject({
      health: 'dead',
      changed: false,
      since: T0 + 3_000,
    });
  });

  it('needs successThreshold consecutive successes to recover', () => {
    const assessor = createAssessor({ failureThreshold: 1, successThreshold: 2 });
    assessor.record('forge', 'http', sample(true, T0));
    assessor.record('forge', 'http', sample(true, T0 + 1));
    expect(assessor.record('forge', 'http', sample(false, T0 + 1_000)).health).toBe('dead');
    expect(assessor.record('forge', 'http', sample(true, T0 + 2_000)).health).toBe('dead');
    expect(assessor.record('forge', 'http', sample(false, T0 + 3_000)).health).toBe('dead');
    expect(assessor.record('forge', 'http', sample(true, T0 + 4_000)).health).toBe('dead');
    const back = assessor.record('forge', 'http', sample(true, T0 + 5_000));
    expect(back).toMatchObject({ health: 'healthy', changed: true, lastHealthyAt: T0 + 5_000 });
    expect(back.firstFailedAt).toBeUndefined();
  });

  it('does not flip on a flapping probe', () => {
    const assessor = createAssessor({ failureThreshold: 3 });
    const verdicts = Array.from({ length: 40 }, (_, index) =>
      assessor.record(
        'forge',
        'http',
        sample(index % 2 === 0 || index % 5 === 0, T0 + index * 1_000),
      ),
    );
    expect(new Set(verdicts.map((verdict) => verdict.health))).toEqual(new Set(['healthy']));
    expect(verdicts.filter((verdict) => verdict.changed)).toHaveLength(1);
  });

  it('would flip on every sample of the same flapping probe with threshold 1 (the thresholds are what damp it)', () => {
    const assessor = createAssessor({ failureThreshold: 1 });
    const verdicts = Array.from({ length: 10 }, (_, index) =>
      assessor.record('forge', 'http', sample(index % 2 === 0, T0 + index)),
    );
    expect(verdicts.filter((verdict) => verdict.changed)).toHaveLength(10);
  });

  it('expresses the seed rule "all failing = dead, some failing = degraded" with deadWhen: "all"', () => {
    const assessor = createAssessor({ failureThreshold: 1, deadWhen: 'all' });
    assessor.track('forge', { startedAt: T0, probes: ['process', 'http'] });
    assessor.record('forge', 'process', sample(true, T0 + 1));
    expect(assessor.record('forge', 'http', sample(true, T0 + 2)).health).toBe('healthy');
    const some = assessor.record('forge', 'http', sample(false, T0 + 1_000, 'refused'));
    expect(some).toMatchObject({
      health: 'degraded',
      failing: ['http'],
      failures: { http: 'refused' },
    });
    expect(some.reason).toContain('not every critical probe is failing');
    const all = assessor.record('forge', 'process', sample(false, T0 + 2_000, 'not_running'));
    expect(all).toMatchObject({
      health: 'dead',
      firstFailedAt: T0 + 1_000,
      failures: { http: 'refused', process: 'not_running' },
    });
    expect(all.reason).toMatch(/^dead: every critical probe failing: /);
  });

  it('with deadWhen "all", a declared probe that has not reported yet keeps the agent from dead', () => {
    const assessor = createAssessor({ failureThreshold: 1, deadWhen: 'all' });
    assessor.track('forge', { startedAt: T0, probes: ['process', 'http'] });
    expect(assessor.record('forge', 'http', sample(false, T0 + 1)).health).toBe('degraded');
  });

  it('makes a non-critical probe degrade, never kill', () => {
    const assessor = createAssessor({ failureThreshold: 1, probes: { http: { critical: false } } });
    assessor.record('forge', 'heartbeat', sample(true, T0));
    const verdict = assessor.record('forge', 'http', sample(false, T0 + 1));
    expect(verdict).toMatchObject({ health: 'degraded', failing: ['http'] });
    expect(verdict.probes.http).toMatchObject({
      critical: false,
      state: 'failing',
      consecutiveFailures: 1,
    });
    expect(assessor.record('forge', 'heartbeat', sample(false, T0 + 2, 'stale')).health).toBe(
      'dead',
    );
  });

  it('takes per-probe thresholds (a heartbeat past its age threshold is dead at once)', () => {
    const assessor = createAssessor({
      failureThreshold: 3,
      probes: { heartbeat: { failureThreshold: 1 } },
    });
    assessor.record('forge', 'http', sample(true, T0));
    assessor.record('forge', 'heartbeat', sample(true, T0));
    expect(assessor.record('forge', 'http', sample(false, T0 + 1)).health).toBe('healthy');
    expect(assessor.record('forge', 'heartbeat', sample(false, T0 + 2, 'stale'))).toMatchObject({
      health: 'dead',
      failures: { heartbeat: 'stale' },
    });
  });

  it('takes per-agent rules in track() over the assessor-wide ones', () => {
    const assessor = createAssessor({ failureThreshold: 1, probes: { http: { critical: true } } });
    assessor.track('archive', {
      startedAt: T0,
      probes: { http: { critical: false, failureThreshold: 2 } },
    });
    assessor.record('archive', 'http', sample(false, T0 + 1));
    expect(assessor.record('archive', 'http', sample(false, T0 + 2)).health).toBe('degraded');
  });

  it('reports unknown during the startup grace, then dead once it is over', () => {
    let clock = T0;
    const assessor = createAssessor({
      failureThreshold: 2,
      startupGraceMs: 60_000,
      now: () => clock,
    });
    assessor.track('forge', { startedAt: T0 });
    assessor.record('forge', 'process', sample(false, T0 + 10_000));
    const starting = assessor.record('forge', 'process', sample(false, T0 + 20_000));
    expect(starting).toMatchObject({ health: 'unknown', inGrace: true, graceEndsAt: T0 + 60_000 });
    expect(starting.reason).toMatch(
      /^unknown: starting, within the startup grace until .* \(would be dead: /,
    );
    clock = T0 + 60_000;
    const over = assessor.evaluate('forge');
    expect(over).toMatchObject({
      health: 'dead',
      inGrace: false,
      changed: true,
      since: T0 + 60_000,
      firstFailedAt: T0 + 10_000,
    });
  });

  it('ends the startup grace early at the first healthy verdict', () => {
    const assessor = createAssessor({ failureThreshold: 1, startupGraceMs: 60_000 });
    assessor.track('forge', { startedAt: T0 });
    expect(assessor.record('forge', 'process', sample(true, T0 + 1_000))).toMatchObject({
      health: 'healthy',
      inGrace: false,
    });
    expect(assessor.record('forge', 'process', sample(false, T0 + 2_000)).health).toBe('dead');
  });

  it('keeps the startup grace until every declared critical probe has passed (a live process alone is not healthy)', () => {
    const assessor = createAssessor({ failureThreshold: 1, startupGraceMs: 30_000 });
    assessor.track('forge', { startedAt: T0, probes: ['process', 'heartbeat', 'http'] });
    const processOnly = assessor.record('forge', 'process', sample(true, T0 + 100));
    expect(processOnly).toMatchObject({ health: 'unknown', inGrace: true });
    expect(processOnly.reason).toMatch(/waiting for heartbeat, http/);
    // /health not listening yet: still starting, not dead.
    expect(assessor.record('forge', 'http', sample(false, T0 + 200, 'refused'))).toMatchObject({
      health: 'unknown',
      inGrace: true,
    });
    assessor.record('forge', 'heartbeat', sample(true, T0 + 300));
    expect(assessor.record('forge', 'http', sample(true, T0 + 400))).toMatchObject({
      health: 'healthy',
      inGrace: false,
    });
  });

  it("ignores samples observed before the agent's (re)start: they describe its previous life", () => {
    const assessor = createAssessor({ failureThreshold: 2, startupGraceMs: 30_000 });
    assessor.track('forge', { startedAt: T0 - 60_000 });
    assessor.record('forge', 'http', sample(true, T0 - 1_000));
    assessor.track('forge', { startedAt: T0, probes: ['http'] });
    // A probe that was in flight across the restart: its ok answer came from the old process.
    const stale = assessor.record('forge', 'http', sample(true, T0 - 10));
    expect(stale).toMatchObject({ health: 'unknown', inGrace: true });
    expect(stale.probes.http?.consecutiveSuccesses).toBe(0);
  });

  it('keeps firstFailedAt across dead ⇄ degraded so dead-for durations accumulate, and clears it when healthy', () => {
    const assessor = createAssessor({ failureThreshold: 1, probes: { http: { critical: false } } });
    assessor.record('forge', 'process', sample(true, T0));
    assessor.record('forge', 'http', sample(true, T0));
    expect(assessor.record('forge', 'http', sample(false, T0 + 1_000))).toMatchObject({
      health: 'degraded',
      firstFailedAt: T0 + 1_000,
    });
    expect(assessor.record('forge', 'process', sample(false, T0 + 2_000))).toMatchObject({
      health: 'dead',
      firstFailedAt: T0 + 1_000,
    });
    expect(assessor.record('forge', 'process', sample(true, T0 + 3_000))).toMatchObject({
      health: 'degraded',
      firstFailedAt: T0 + 1_000,
    });
    expect(assessor.record('forge', 'process', sample(false, T0 + 4_000))).toMatchObject({
      health: 'dead',
      firstFailedAt: T0 + 1_000,
    });
    const healthy = assessor.record('forge', 'process', sample(true, T0 + 5_000));
    expect(healthy.health).toBe('degraded');
    const recovered = assessor.record('forge', 'http', sample(true, T0 + 6_000));
    expect(recovered).toMatchObject({ health: 'healthy', lastHealthyAt: T0 + 6_000 });
    expect(recovered.firstFailedAt).toBeUndefined();
  });

  it('reports a stuck heartbeat as its failure reason', () => {
    const assessor = createAssessor({ failureThreshold: 1 });
    assessor.record('forge', 'heartbeat', sample(true, T0));
    expect(assessor.record('forge', 'heartbeat', sample(false, T0 + 1, 'stuck')).failures).toEqual({
      heartbeat: 'stuck',
    });
  });

  it('starts over when an agent is tracked again (after a revive)', () => {
    const assessor = createAssessor({ failureThreshold: 1, startupGraceMs: 30_000 });
    assessor.track('forge', { startedAt: T0 - 60_000 });
    assessor.record('forge', 'process', sample(false, T0));
    expect(assessor.get('forge')?.health).toBe('dead');
    const again = assessor.track('forge', { startedAt: T0 + 10_000 });
    expect(again).toMatchObject({ health: 'unknown', inGrace: true, failing: [] });
    expect(assessor.record('forge', 'process', sample(false, T0 + 11_000)).health).toBe('unknown');
  });

  it('accepts a custom rule', () => {
    const assessor = createAssessor({
      failureThreshold: 1,
      deadWhen: (probes) =>
        probes.filter((probe) => probe.state === 'failing').length >= 2 ? 'dead' : 'healthy',
    });
    assessor.record('forge', 'a', sample(false, T0));
    expect(assessor.record('forge', 'b', sample(true, T0)).health).toBe('healthy');
    const verdict = assessor.record('forge', 'b', sample(false, T0 + 1));
    expect(verdict.health).toBe('dead');
    expect(verdict.reason).toContain('custom rule');
  });

  it('tracks agents independently and forgets them', () => {
    const assessor = createAssessor({ failureThreshold: 1 });
    assessor.record('forge', 'process', sample(false, T0));
    assessor.record('archive', 'process', sample(true, T0));
    expect(assessor.agents().sort()).toEqual(['archive', 'forge']);
    expect(assessor.get('archive')?.health).toBe('healthy');
    expect(assessor.forget('forge')).toBe(true);
    expect(assessor.get('forge')).toBeUndefined();
  });

  it('refuses bad options and unknown agents with codes', () => {
    expect(() => createAssessor({ failureThreshold: 0 })).toThrow(/failureThreshold/);
    expect(() => createAssessor({ deadWhen: 'most' as never })).toThrow(ProbeError);
    expect(() => createAssessor({ probes: { http: { critcal: true } as never } })).toThrow(
      /critcal/,
    );
    const assessor = createAssessor();
    try {
      assessor.evaluate('nobody');
      expect.unreachable();
    } catch (error) {
      expect((error as ProbeError).code).toBe('PROBE_UNKNOWN_AGENT');
    }
  });

  it('turns dead at once when the process exited, whatever the grace and thresholds', () => {
    const assessor = createAssessor({ failureThreshold: 3, startupGraceMs: 60_000 });
    assessor.track('forge', { startedAt: T0, probes: ['process', 'heartbeat'] });
    assessor.record('forge', 'process', sample(true, T0 + 100));
    const dead = assessor.exited('forge', { at: T0 + 2_000, code: null, signal: 'SIGKILL' });
    expect(dead).toMatchObject({
      health: 'dead',
      changed: true,
      since: T0 + 2_000,
      firstFailedAt: T0 + 2_000,
      inGrace: true,
      failing: ['process'],
      failures: { process: 'not_running' },
      exit: { at: T0 + 2_000, signal: 'SIGKILL' },
      reason: 'dead: process exited (signal SIGKILL)',
    });
    expect(dead.probes.process?.lastResult).toMatchObject({
      ok: false,
      failure: 'not_running',
      detail: 'exited (signal SIGKILL)',
    });
    // A late sample of the old process changes nothing: the exit stands until the next start.
    expect(assessor.record('forge', 'heartbeat', sample(true, T0 + 2_500)).health).toBe('dead');
    expect(assessor.get('forge')?.reason).toBe('dead: process exited (signal SIGKILL)');
    expect(assessor.track('forge', { startedAt: T0 + 3_000 }).exit).toBeUndefined();
  });

  it('ignores an exit from before the current start', () => {
    const assessor = createAssessor({ failureThreshold: 1 });
    assessor.track('forge', { startedAt: T0 + 1_000 });
    assessor.record('forge', 'process', sample(true, T0 + 1_100));
    expect(assessor.exited('forge', { at: T0 + 500, code: 1 })).toMatchObject({
      health: 'healthy',
    });
    expect(assessor.exited('forge', { at: T0 + 1_200, code: 1 }).reason).toBe(
      'dead: process exited (exit code 1)',
    );
  });

  it('refuses an exit it cannot read, naming the field', () => {
    const assessor = createAssessor();
    expect(() => assessor.exited('forge', { at: Number.NaN })).toThrow(
      /assessor.exited\(forge\): at/,
    );
  });

  it('counts a heartbeat older than the incarnation as stale, however close to the start', () => {
    const assessor = createAssessor({ failureThreshold: 1, startupGraceMs: 0 });
    assessor.track('forge', { startedAt: T0, notBefore: T0, probes: ['heartbeat'] });
    const beat = (evidenceAt: number, at: number): ProbeResult => ({
      ...sample(true, at),
      kind: 'heartbeat',
      evidenceAt,
    });
    // The previous process's last beat, 1 ms before the start: no tolerance lets it pass.
    const old = assessor.record('forge', 'heartbeat', beat(T0 - 1, T0 + 50));
    expect(old).toMatchObject({ health: 'dead', failures: { heartbeat: 'stale' } });
    expect(old.probes.heartbeat?.lastResult?.detail).toMatch(
      /^evidence predates the agent's start \(1 ms earlier\)/,
    );
    expect(assessor.record('forge', 'heartbeat', beat(T0, T0 + 100)).health).toBe('healthy');
  });

  it('lets a failure listed as inconclusive move no counter', () => {
    const assessor = createAssessor({ failureThreshold: 1 });
    assessor.track('forge', {
      startedAt: T0,
      probes: { process: { inconclusive: ['timeout', 'not_running'] } },
    });
    assessor.record('forge', 'process', sample(true, T0 + 1));
    const slow = assessor.record('forge', 'process', sample(false, T0 + 2, 'timeout'));
    expect(slow).toMatchObject({ health: 'healthy', changed: false });
    expect(slow.probes.process).toMatchObject({ state: 'passing', consecutiveFailures: 0 });
    expect(slow.probes.process?.lastResult?.failure).toBe('timeout');
    expect(assessor.record('forge', 'process', sample(false, T0 + 3, 'pid_reused')).health).toBe(
      'dead',
    );
  });

  it('takes per-agent thresholds and grace from track, so one assessor serves a fleet', () => {
    const assessor = createAssessor({
      failureThreshold: 1,
      probes: { heartbeat: { failureThreshold: 1 } },
    });
    assessor.track('patient', { startedAt: T0, failureThreshold: 3, startupGraceMs: 10_000 });
    assessor.track('eager', { startedAt: T0 });
    for (const agent of ['patient', 'eager']) assessor.record(agent, 'http', sample(true, T0 + 1));
    expect(assessor.record('eager', 'http', sample(false, T0 + 2)).health).toBe('dead');
    expect(assessor.record('patient', 'http', sample(false, T0 + 2)).health).toBe('healthy');
    // A per-probe rule still wins over the agent's threshold.
    expect(assessor.record('patient', 'heartbeat', sample(false, T0 + 3)).health).toBe('dead');
    expect(assessor.track('slow', { startedAt: T0, startupGraceMs: 10_000 }).graceEndsAt).toBe(
      T0 + 10_000,
    );
  });

  it('keeps no result object: the last result is rebuilt from its base fields', () => {
    const assessor = createAssessor();
    const result = { ...sample(true, T0), deadlineAt: T0 + 5, body: { big: 'x'.repeat(1000) } };
    const last = assessor.record('forge', 'http', result).probes.http?.lastResult;
    expect(last).toEqual({
      kind: 'test',
      ok: true,
      latencyMs: 1,
      detail: 'fine',
      observedAt: T0,
      deadlineAt: T0 + 5,
    });
    expect(last).not.toBe(result);
  });
});
