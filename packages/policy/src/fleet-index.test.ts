import { describe, expect, it } from 'vitest';
import type { FleetAgent } from './decide-input.js';
import { assessFleetBrake, createFleetIndex, isFleetIndex } from './fleet-index.js';
import { FleetBrakeSchema } from './policy-config.js';

const now = 50_000_000;
const brake = FleetBrakeSchema.parse({
  max_deaths: 3,
  max_percent: 50,
  min_agents: 4,
  window: '2m',
  hold: '30m',
  restart_interval: '15s',
});

function fleetOf(deadAgo: number[], healthy: number, extra: Partial<{ restarts: number[] }> = {}) {
  const agents: FleetAgent[] = deadAgo.map((ago, index) => ({
    name: `dead-${index}`,
    state: 'dead',
    since: now - ago,
  }));
  for (let index = 0; index < healthy; index += 1)
    agents.push({ name: `up-${index}`, state: 'healthy' });
  return createFleetIndex({ agents, ...extra });
}

describe('createFleetIndex', () => {
  it('indexes agents, substitutes and deaths in order', () => {
    const fleet = createFleetIndex({
      agents: [
        { name: 'b', state: 'dead', since: 20 },
        { name: 'a', state: 'dead', since: 20 },
        { name: 'c', state: 'dead', since: 10 },
        { name: 'd', state: 'dead' },
        { name: 'e', state: 'healthy', substituting_for: 'c' },
        { name: 'f', state: 'dead', substituting_for: 'b' },
      ],
      restarts: [5, 30, 7],
    });
    expect(isFleetIndex(fleet)).toBe(true);
    expect(isFleetIndex({ agents: [] })).toBe(false);
    expect(fleet.size).toBe(6);
    expect(fleet.dead.map((entry) => entry.name)).toEqual(['c', 'a', 'b']); // d and f: no known time of death
    expect(fleet.substituteOf('c')).toBe('e');
    expect(fleet.substituteOf('b')).toBeUndefined(); // a dead substitute covers nobody
    expect(fleet.lastRestart).toBe(30);
  });
});

describe('assessFleetBrake', () => {
  it('stays off while at most max_deaths died within the window', () => {
    expect(
      assessFleetBrake({
        fleet: fleetOf([10_000, 20_000, 30_000], 20),
        agent: 'dead-0',
        now,
        brake,
      }),
    ).toBeUndefined();
  });

  it('engages when more than max_deaths died within the window, and spaces starts in order of death', () => {
    const fleet = fleetOf([10_000, 20_000, 30_000, 40_000], 20);
    const statuses = ['dead-3', 'dead-2', 'dead-1', 'dead-0'].map((agent) =>
      assessFleetBrake({ fleet, agent, now, brake }),
    );
    expect(statuses[0]).toMatchObject({
      engaged: true,
      deaths: 4,
      percent: 16.7,
      window: 120_000,
      slot: now - 40_000,
    });
    expect(statuses.map((status) => status?.slot)).toEqual([
      now - 40_000,
      now - 25_000,
      now - 10_000,
      now + 5_000,
    ]);
    expect(statuses[0]?.summary).toBe(
      'fleet brake: 4 of 24 agents (16.7%) died within 2m; starts spaced 15s apart',
    );
  });

  it('does not count deaths spread wider than the window as one storm', () => {
    expect(
      assessFleetBrake({
        fleet: fleetOf([0, 200_000, 400_000, 600_000, 800_000], 20),
        agent: 'dead-0',
        now,
        brake,
      }),
    ).toBeUndefined();
  });

  it('engages on the percentage in a fleet of at least min_agents', () => {
    expect(
      assessFleetBrake({ fleet: fleetOf([1_000, 2_000, 3_000], 2), agent: 'dead-0', now, brake }),
    ).toMatchObject({ deaths: 3, percent: 60 });
    expect(
      assessFleetBrake({ fleet: fleetOf([1_000, 2_000], 1), agent: 'dead-0', now, brake }),
    ).toBeUndefined(); // 3 agents < min_agents
  });

  it('spaces starts after the latest fleet-wide start', () => {
    const fleet = fleetOf([10_000, 20_000, 30_000, 40_000], 20, { restarts: [now - 2_000] });
    expect(assessFleetBrake({ fleet, agent: 'dead-3', now, brake })?.slot).toBe(now + 13_000);
    expect(assessFleetBrake({ fleet, agent: 'dead-2', now, brake })?.slot).toBe(now + 28_000);
  });

  it('lets go once the storm is older than hold, or when disabled', () => {
    const old = fleetOf([31 * 60_000, 31 * 60_000 + 1, 31 * 60_000 + 2, 31 * 60_000 + 3], 20);
    expect(assessFleetBrake({ fleet: old, agent: 'dead-0', now, brake })).toBeUndefined();
    const storm = fleetOf([1, 2, 3, 4], 20);
    expect(
      assessFleetBrake({ fleet: storm, agent: 'dead-0', now, brake: { ...brake, enabled: false } }),
    ).toBeUndefined();
  });

  it('queues an agent missing from the dead list last', () => {
    const fleet = fleetOf([10_000, 20_000, 30_000, 40_000], 20);
    expect(assessFleetBrake({ fleet, agent: 'someone-else', now, brake })?.slot).toBe(
      now - 40_000 + 4 * 15_000,
    );
  });
});
