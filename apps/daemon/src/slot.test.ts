import { describe, expect, it } from 'vitest';
import { testConfig } from '../test/fleet.js';
import { hiddenFromAgent } from './slot.js';

describe('hiddenFromAgent', () => {
  it('hides home roots, other agents’ homes, the state directory and the cells root from a level-2 agent', () => {
    const { config } = testConfig(
      [
        '[daemon]',
        'state_dir = "/var/lib/pit"',
        '[cells]',
        'root = "/srv/missions"',
        '[sandbox]',
        'home_roots = ["/srv/homes"]',
        '[agents.anvil]',
        'home = "/srv/homes/anvil"',
        'argv = ["/bin/true"]',
        '[agents.forge]',
        'home = "/srv/homes/forge"',
        'argv = ["/bin/true"]',
      ].join('\n'),
      '/etc/pit',
    );
    expect(hiddenFromAgent(config, config.daemon.state_dir, 'anvil').sort()).toEqual(
      ['/srv/homes', '/srv/homes/forge', '/var/lib/pit', '/srv/missions'].sort(),
    );
  });
});
