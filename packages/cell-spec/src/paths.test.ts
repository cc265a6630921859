import { describe, expect, it } from 'vitest';
import { cellPaths } from './paths.js';

const uuid = '3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b';

describe('cellPaths', () => {
  it('lays out a cell as ARCHITECTURE.md says', () => {
    const paths = cellPaths('/var/missions', uuid);
    const dir = `/var/missions/${uuid}`;
    expect(paths).toMatchObject({
      dir,
      manifest: `${dir}/cell.json`,
      workspace: `${dir}/workspace`,
      events: `${dir}/logs/events.jsonl`,
      checkpoints: `${dir}/checkpoints`,
      bus: `${dir}/bus`,
      heartbeats: `${dir}/.lazarus/heartbeats`,
      state: `${dir}/.lazarus/state.json`,
    });
    expect(paths.heartbeat('forge')).toBe(`${dir}/.lazarus/heartbeats/forge.json`);
    expect(paths.agentLog('forge')).toBe(`${dir}/logs/forge.log`);
    expect(paths.agentErrorLog('forge')).toBe(`${dir}/logs/forge.err.log`);
    expect(paths.inbox('forge')).toBe(`${dir}/bus/inbox/forge`);
    expect(cellPaths(dir).manifest).toBe(`${dir}/cell.json`);
  });

  it('refuses a traversal uuid or agent name before building a path', () => {
    expect(() => cellPaths('/var/missions', '../../etc')).toThrow(
      expect.objectContaining({ code: 'CELL_BAD_NAME' }),
    );
    const paths = cellPaths('/var/missions', uuid);
    for (const name of ['../../etc', '..', 'a/b', '.lazarus']) {
      expect(() => paths.heartbeat(name)).toThrow(
        expect.objectContaining({ code: 'CELL_BAD_NAME' }),
      );
      expect(() => paths.agentLog(name)).toThrow(/must match/);
      expect(() => paths.inbox(name)).toThrow(/must match/);
    }
  });
});
