import { afterEach, describe, expect, it } from 'vitest';
import { captureLogger } from '../test/helpers.js';
import { startIssuesApi, type IssuesFlavour, type TestIssuesApi } from '@pit/test-kit';
import { createIssueTracker, type IssueTracker } from './issue-tracker.js';
import type { DeathReportInput } from './post-mortem.js';

const TOKEN = 'ghp_testtoken_0123456789abcdef';
const CELL = '3f2a1c4e-9b7d-4e2f-8a1b-0c9d8e7f6a5b';
const OTHER_CELL = '7c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e';

function report(overrides: Partial<DeathReportInput> = {}): DeathReportInput {
  return {
    agent: 'scout',
    mission: 'survey the north ridge',
    cell_uuid: CELL,
    reason: 'no heartbeat for 120 s',
    dead_since: new Date('2026-11-22T10:00:00.000Z'),
    probes: [
      {
        name: 'heartbeat',
        ok: false,
        latency_ms: null,
        detail: 'last beat 120 s ago',
        observed_at: '2026-11-22T10:02:00.000Z',
      },
      {
        name: 'http /health',
        ok: false,
        latency_ms: 5000,
        detail: 'timeout | no answer',
        observed_at: '2026-11-22T10:02:00.000Z',
      },
    ],
    restarts: [{ at: '2026-11-22T10:01:00.000Z', outcome: 'restarted', detail: 'pid 4242' }],
    config_diff:
      '--- last-known-good/agent.toml\n+++ current/agent.toml\n@@ -1 +1 @@\n-model = "a"\n+model = "b"',
    log_lines: [
      'booting',
      'connecting to provider',
      'Error: ```injected fence``` 503 from provider',
    ],
    ...overrides,
  };
}

describe.each<IssuesFlavour>(['github', 'gitea'])('createIssueTracker (%s)', (flavour) => {
  let api: TestIssuesApi;
  afterEach(async () => {
    await api?.close();
  });

  function tracker(logger = captureLogger()): IssueTracker {
    return createIssueTracker({
      config: {
        provider: flavour,
        base_url: api.baseUrl,
        owner: api.owner,
        repo: api.repo,
        max_log_lines: 2,
      },
      token: TOKEN,
      logger,
      clock: () => new Date('2026-11-22T10:05:00.000Z'),
      retry: { retries: 2, minDelayMs: 10, maxDelayMs: 50 },
    });
  }

  it('opens one post-mortem issue, survives a tracker restart without a duplicate, and closes it on recovery', async () => {
    api = await startIssuesApi({ flavour, token: TOKEN });
    api.addPullRequest('[pit] scout: a pull request that must not be taken for the issue');
    const logger = captureLogger();
    const first = await tracker(logger).reportDeath(report());
    expect(first).toMatchObject({ created: true, commented: false });
    const issue = api.issues.find((candidate) => candidate.number === first.number);
    expect(issue?.title).toBe(
      '[pit] 3f2a1c4e/scout: dead in survey the north ridge — no heartbeat for 120 s',
    );
    expect(issue?.labels).toEqual(['pit', 'agent-dead']);
    expect(issue?.body).toContain('**Mission:** survey the north ridge');
    expect(issue?.body).toContain('**Dead for:** 5 min 0 s');
    expect(issue?.body).toContain(
      '| http /health | **failed** | 5000 ms | 2026-11-22T10:02:00.000Z | timeout \\| no answer |',
    );
    expect(issue?.body).toContain('- 2026-11-22T10:01:00.000Z — restarted: pid 4242');
    expect(issue?.body).toContain('+model = "b"');
    expect(issue?.body).toContain(
      '````\nconnecting to provider\nError: ```injected fence``` 503 from provider\n````',
    );
    expect(issue?.body).not.toContain('booting');

    // The daemon restarts: a new tracker finds the open issue instead of opening another.
    const again = await tracker().reportDeath(report());
    expect(again).toMatchObject({ number: first.number, created: false, commented: false });
    // A new death episode of the same agent is a comment on the same issue.
    const later = await tracker().reportDeath(
      report({ dead_since: new Date('2026-11-22T10:04:00.000Z') }),
    );
    expect(later).toMatchObject({ number: first.number, created: false, commented: true });
    expect(
      await tracker().reportDeath(report({ dead_since: new Date('2026-11-22T10:04:00.000Z') })),
    ).toMatchObject({ commented: false });
    expect(api.issues.filter((candidate) => !candidate.isPull)).toHaveLength(1);

    // The same name in another cell is another agent: its recovery closes nothing of this one.
    expect(await tracker().reportRecovery({ agent: 'scout', cell_uuid: OTHER_CELL })).toBeNull();
    const closed = await tracker().reportRecovery({
      agent: 'scout',
      cell_uuid: CELL,
      at: new Date('2026-11-22T11:00:00.000Z'),
    });
    expect(closed?.number).toBe(first.number);
    expect(issue?.state).toBe('closed');
    expect(issue?.comments.at(-1)?.body).toBe(
      '✅ `scout` recovered at 2026-11-22T11:00:00.000Z after 1 h 0 min.',
    );
    expect(await tracker().reportRecovery({ agent: 'scout', cell_uuid: CELL })).toBeNull();
    expect(await tracker().findOpenIssue('scout', CELL)).toBeNull();
    expect(logger.text()).not.toContain(TOKEN);
  });

  it('opens one issue per cell for two cells with an agent of the same name', async () => {
    api = await startIssuesApi({ flavour, token: TOKEN });
    const first = await tracker().reportDeath(report());
    const second = await tracker().reportDeath(
      report({ cell_uuid: OTHER_CELL, mission: 'dig the south pit' }),
    );
    expect(second.created).toBe(true);
    expect(second.number).not.toBe(first.number);
    expect(api.issues.map((issue) => issue.title).sort()).toEqual([
      '[pit] 3f2a1c4e/scout: dead in survey the north ridge — no heartbeat for 120 s',
      '[pit] 7c1d2e3f/scout: dead in dig the south pit — no heartbeat for 120 s',
    ]);
    expect((await tracker().findOpenIssue('scout', OTHER_CELL))?.number).toBe(second.number);
  });

  it('finds an existing issue beyond the first page, one titled before cells were told apart included', async () => {
    api = await startIssuesApi({ flavour, token: TOKEN });
    // The title of an older version (the bare name); the body names the cell.
    const mine = api.addIssue({
      title: '[pit] miner: dead — exit 137',
      body: `## \`miner\` is dead\n\n- **Cell:** \`${CELL}\``,
    });
    api.addIssue({ title: '[pit] miner: dead — exit 1', body: `- **Cell:** \`${OTHER_CELL}\`` });
    for (let index = 0; index < 120; index += 1) api.addIssue({ title: `unrelated ${index}` });
    const result = await tracker().reportDeath(report({ agent: 'miner' }));
    expect(result).toMatchObject({ number: mine.number, created: false, commented: true });
    if (flavour === 'gitea') {
      const lists = api.calls.filter(
        (call) => call.method === 'GET' && call.path.endsWith('/issues'),
      );
      expect(lists.every((call) => call.query.type === 'issues' && call.query.limit === '50')).toBe(
        true,
      );
    }
  });

  it('retries a transient 500 and gives up on a refused token', async () => {
    api = await startIssuesApi({ flavour, token: TOKEN });
    api.fault('POST /issues', { status: 502 }, 1);
    const result = await tracker().reportDeath(report());
    expect(result.created).toBe(true);
    expect(
      api.calls
        .filter((call) => call.method === 'POST' && call.path.endsWith('/issues'))
        .map((call) => call.status),
    ).toEqual([502, 201]);
    const logger = captureLogger();
    const refused = createIssueTracker({
      config: { provider: flavour, base_url: api.baseUrl, owner: api.owner, repo: api.repo },
      token: 'wrong-token-12345',
      logger,
    });
    await expect(refused.reportDeath(report())).rejects.toMatchObject({
      code: 'NOTIFY_UNAUTHORIZED',
    });
    expect(logger.text()).not.toContain('wrong-token-12345');
  });
});

describe('createIssueTracker config', () => {
  it('requires base_url for gitea and names every bad key', () => {
    expect(() =>
      createIssueTracker({ config: { provider: 'gitea', owner: 'a b', repo: 'r' }, token: TOKEN }),
    ).toThrow(/\[issues\] owner: .*; \[issues\] base_url: base_url is required/);
  });
});
