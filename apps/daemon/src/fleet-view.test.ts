import { assessFleetBrake } from '@pit/policy';
import { AgentStateSchema, type AgentState } from '@pit/cell-spec';
import { describe, expect, it } from 'vitest';
import { testConfig } from '../test/fleet.js';
import { fleetFrom, indexSlots } from './fleet-view.js';
import type { Slot } from './slot.js';

const UUID = '0b8f3c1e-8d3a-4c52-9d8e-2f4a6b1c7e90';

function slot(name: string, state: Partial<AgentState>): Slot {
  return {
    key: `${UUID}/${name}`,
    name,
    cell: { uuid: UUID },
    state: AgentStateSchema.parse({ health: 'unknown', ...state }),
  } as unknown as Slot;
}

const { config } = testConfig(
  ['[agents.spare]', 'argv = ["/bin/true"]', '[agents.forge]', 'argv = ["/bin/true"]'].join('\n'),
  '/etc/pit',
);

describe('indexSlots', () => {
  const slots = new Map(
    [
      slot('forge', { health: 'healthy', since: '2026-12-04T10:00:00.000Z' }),
      slot('anvil', {
        health: 'dead',
        since: '2026-12-04T10:05:00.000Z',
        first_dead_at: '2026-12-04T10:01:00.000Z',
        substituted_by: 'bellows',
      }),
      slot('bellows', { health: 'healthy', since: '2026-12-04T10:02:00.000Z' }),
      // Revived, not healthy yet: still a death of the storm.
      slot('tongs', { health: 'unknown', first_dead_at: '2026-12-04T10:00:30.000Z' }),
      slot('quench', { health: 'unknown' }),
    ].map((entry) => [entry.key, entry]),
  );
  const index = indexSlots(slots, config, [Date.parse('2026-12-04T10:03:00.000Z')]);

  it('counts every slot and each standby not running anywhere', () => {
    // spare is a standby running nowhere; forge runs in the cell.
    expect(index.size).toBe(6);
    expect(index.get('standby/spare')).toEqual({ name: 'standby/spare', state: 'healthy' });
    expect(index.get('standby/forge')).toBeUndefined();
  });

  it('lists the dead (the revived but not healthy among them) oldest death first', () => {
    expect(index.dead).toEqual([
      { name: `${UUID}/tongs`, since: Date.parse('2026-12-04T10:00:30.000Z') },
      { name: `${UUID}/anvil`, since: Date.parse('2026-12-04T10:01:00.000Z') },
    ]);
    expect(index.lastRestart).toBe(Date.parse('2026-12-04T10:03:00.000Z'));
  });

  it('makes each agent’s entry as policy reads it, substitutions included', () => {
    expect(index.get(`${UUID}/anvil`)).toEqual({
      name: `${UUID}/anvil`,
      state: 'dead',
      since: Date.parse('2026-12-04T10:01:00.000Z'),
    });
    expect(index.get(`${UUID}/tongs`)?.state).toBe('dead');
    expect(index.get(`${UUID}/bellows`)).toEqual({
      name: `${UUID}/bellows`,
      state: 'healthy',
      since: Date.parse('2026-12-04T10:02:00.000Z'),
      substituting_for: `${UUID}/anvil`,
    });
    expect(index.substituteOf(`${UUID}/anvil`)).toBe(`${UUID}/bellows`);
    expect(index.get(`${UUID}/nobody`)).toBeUndefined();
  });

  it('seen from a cell, names mean that cell’s agents', () => {
    const fromAnvil = fleetFrom(index, slots.get(`${UUID}/anvil`)!, config);
    expect(fromAnvil.substituteOf('anvil')).toBe('bellows');
    expect(fromAnvil.get('bellows')).toMatchObject({ name: 'bellows', substituting_for: 'anvil' });
    expect(fromAnvil.get('spare')).toEqual({ name: 'spare', state: 'healthy' });
  });

  it('a dead substitute stands in for nobody', () => {
    const withDeadStandIn = new Map(slots);
    const dead = slot('bellows', { health: 'dead', since: '2026-12-04T10:04:00.000Z' });
    withDeadStandIn.set(dead.key, dead);
    expect(indexSlots(withDeadStandIn, config, []).substituteOf(`${UUID}/anvil`)).toBeUndefined();
  });

  it('feeds the fleet brake', () => {
    const brake = {
      enabled: true,
      max_deaths: 1,
      max_percent: 50,
      min_agents: 4,
      window: 120_000,
      hold: 1_800_000,
      restart_interval: 10_000,
    };
    const status = assessFleetBrake({
      fleet: index,
      agent: `${UUID}/anvil`,
      now: Date.parse('2026-12-04T10:06:00.000Z'),
      brake,
    });
    // Two deaths 30 s apart (more than max_deaths = 1); anvil died second: its start comes one interval after the last fleet start.
    expect(status).toMatchObject({
      deaths: 2,
      slot: Date.parse('2026-12-04T10:03:00.000Z') + 20_000,
    });
  });
});
