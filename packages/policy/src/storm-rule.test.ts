import { describe, expect, it } from 'vitest';
import { isDeathStorm } from './storm-rule.js';

const brake = { max_deaths: 5, max_percent: 50, min_agents: 4 };

describe('isDeathStorm', () => {
  it('calls more than max_deaths a storm, whatever the fleet size', () => {
    expect(isDeathStorm({ deaths: 6, brake })).toBe(true);
    expect(isDeathStorm({ deaths: 6, fleetSize: 1000, brake })).toBe(true);
    expect(isDeathStorm({ deaths: 5, brake })).toBe(false);
  });

  it('calls more than max_percent of a fleet of at least min_agents a storm', () => {
    expect(isDeathStorm({ deaths: 3, fleetSize: 4, brake })).toBe(true);
    expect(isDeathStorm({ deaths: 2, fleetSize: 4, brake })).toBe(false); // exactly 50 %
    expect(isDeathStorm({ deaths: 3, fleetSize: 3, brake })).toBe(false); // below min_agents
  });

  it('applies only max_deaths without a fleet size, or for an empty fleet', () => {
    expect(isDeathStorm({ deaths: 3, brake })).toBe(false);
    expect(isDeathStorm({ deaths: 3, fleetSize: 0, brake: { ...brake, min_agents: 0 } })).toBe(
      false,
    );
  });
});
