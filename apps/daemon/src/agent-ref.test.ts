import { describe, expect, it } from 'vitest';
import { resolveAgentRef } from './agent-ref.js';

const A = '3f2a0c1e-1111-4111-8111-111111111111';
const B = '3f2b9d00-2222-4222-8222-222222222222';
const fleet = [
  { key: `${A}/forge`, agent: 'forge', cell: A, mission: 'archive' },
  { key: `${B}/forge`, agent: 'forge', cell: B, mission: 'build' },
  { key: `${A}/ezra`, agent: 'ezra', cell: A, mission: 'archive' },
  { key: 'host/watcher', agent: 'watcher' },
];

describe('resolveAgentRef', () => {
  it('takes a name that is in one place only', () => {
    expect(resolveAgentRef('ezra', fleet)).toEqual({ ok: true, key: `${A}/ezra` });
    expect(resolveAgentRef('watcher', fleet)).toEqual({ ok: true, key: 'host/watcher' });
    expect(resolveAgentRef('host/watcher', fleet)).toEqual({ ok: true, key: 'host/watcher' });
  });

  it('refuses a name in several cells, listing every candidate', () => {
    const result = resolveAgentRef('forge', fleet);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toBe('ambiguous');
    expect(result.candidates).toEqual([
      `${A}/forge (mission archive)`,
      `${B}/forge (mission build)`,
    ]);
    expect(result.message).toContain('names 2 agents');
  });

  it('tells the cells apart by uuid, unique prefix or mission; a shared prefix stays ambiguous', () => {
    expect(resolveAgentRef(`${B}/forge`, fleet)).toEqual({ ok: true, key: `${B}/forge` });
    expect(resolveAgentRef('3f2a/forge', fleet)).toEqual({ ok: true, key: `${A}/forge` });
    expect(resolveAgentRef('build/forge', fleet)).toEqual({ ok: true, key: `${B}/forge` });
    expect(resolveAgentRef('3f2/forge', fleet)).toMatchObject({ ok: false, reason: 'ambiguous' });
  });

  it('says where a name is when the cell given does not hold it, and what exists when nothing matches', () => {
    expect(resolveAgentRef('build/ezra', fleet)).toMatchObject({
      ok: false,
      reason: 'not_found',
      candidates: [`${A}/ezra (mission archive)`],
    });
    const unknown = resolveAgentRef('nosuch', fleet);
    expect(unknown).toMatchObject({ ok: false, reason: 'not_found' });
    if (!unknown.ok) expect(unknown.message).toContain('known: ezra, forge, watcher');
  });
});
