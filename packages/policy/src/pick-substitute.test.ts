import { describe, expect, it } from 'vitest';
import { createFleetIndex } from './fleet-index.js';
import { pickSubstitute } from './pick-substitute.js';

describe('pickSubstitute', () => {
  const fleet = createFleetIndex({
    agents: [
      { name: 'bezalel', state: 'dead' },
      { name: 'allegro', state: 'healthy', substituting_for: 'ezra' },
      { name: 'timmy', state: 'degraded' },
      { name: 'kimi', state: 'healthy' },
      { name: 'ezra', state: 'dead' },
    ],
  });

  it('takes the first healthy candidate in the listed order and says why it passed over the others', () => {
    expect(
      pickSubstitute({
        agent: 'bezalel',
        candidates: ['bezalel', 'ghost', 'allegro', 'timmy', 'ezra', 'kimi'],
        fleet,
      }),
    ).toEqual({
      substitute: 'kimi',
      skipped: [
        { name: 'bezalel', why: 'is the dead agent itself' },
        { name: 'ghost', why: 'not in the fleet' },
        { name: 'allegro', why: 'substituting for ezra' },
        { name: 'timmy', why: 'degraded' },
        { name: 'ezra', why: 'dead' },
      ],
    });
  });

  it('keeps an agent that already substitutes for the same agent', () => {
    expect(pickSubstitute({ agent: 'ezra', candidates: ['allegro'], fleet }).substitute).toBe(
      'allegro',
    );
  });

  it('finds nobody in an empty list', () => {
    expect(pickSubstitute({ agent: 'bezalel', candidates: [], fleet })).toEqual({ skipped: [] });
  });
});
