import { promises as fs } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { CellEventSchema, formatIssues } from '@pit/cell-spec';
import { cleanup } from '@pit/test-kit';
import { runIncidents } from './incidents.js';

afterEach(cleanup);

/** Every line of a log checked strictly against cell-spec's list: `path:line: problem` for each bad one. */
async function strictProblems(path: string): Promise<{ kinds: string[]; problems: string[] }> {
  const kinds: string[] = [];
  const problems: string[] = [];
  const lines = (await fs.readFile(path, 'utf8')).split('\n');
  if (lines.at(-1) === '') lines.pop();
  else problems.push(`${path}: the last line has no newline`);
  lines.forEach((line, index) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      problems.push(`${path}:${index + 1}: not JSON: ${(error as Error).message}`);
      return;
    }
    const parsed = CellEventSchema.safeParse(value);
    if (parsed.success) kinds.push(parsed.data.event);
    else problems.push(`${path}:${index + 1}: ${line}\n  ${formatIssues(parsed.error)}`);
  });
  return { kinds, problems };
}

describe('the event log the daemon writes', () => {
  it('holds only kinds and fields of cell-spec’s list, through a crash, a rollback, an approval and a crash outside cells', async () => {
    const run = await runIncidents();
    // A write the list refuses is logged by the daemon, not thrown: none may have happened.
    expect(
      run.daemonOutput.split('\n').filter((line) => line.includes('cannot append event')),
    ).toEqual([]);
    const cell = await strictProblems(run.cellEvents);
    const host = await strictProblems(run.hostEvents);
    expect([...cell.problems, ...host.problems]).toEqual([]);
    // The incidents happened, so the check above saw the kinds they write.
    expect(new Set(cell.kinds)).toEqual(
      new Set([
        'cell_created',
        'agent_joined',
        'cell_activated',
        'agent_started',
        'agent_healthy',
        'agent_dead',
        'decision',
        'agent_revived',
        'config_rolled_back',
        'revive_requested',
        'revive_approved',
      ]),
    );
    expect(host.kinds).toEqual(
      expect.arrayContaining(['agent_started', 'agent_dead', 'decision', 'agent_revived']),
    );
  }, 300_000);
});
