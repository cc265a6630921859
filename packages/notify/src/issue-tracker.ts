import type { Octokit } from '@octokit/rest';
import { AgentNameSchema, formatIssues } from '@pit/cell-spec';
import { z } from 'zod';
import { deliverWithRetry, type RetryOptions } from './deliver.js';
import { NotifyError } from './errors.js';
import { describeError, redactingLogger, silentLogger, type Logger } from './logger.js';
import { EnvNameSchema, parseConfig } from './parse-config.js';
import {
  deathMarker,
  DeathReportSchema,
  formatDuration,
  renderPostMortem,
  type DeathReportInput,
} from './post-mortem.js';

/** The `[issues]` section of pit.toml. */
export const IssuesConfigSchema = z
  .strictObject({
    /** Which forge: `github` (also GitHub Enterprise) or `gitea` (also Forgejo). @default "github" */
    provider: z.enum(['github', 'gitea']).default('github'),
    /** API root: `https://api.github.com`, `https://ghe.example/api/v3`, or `https://gitea.example/api/v1`. Required for gitea. */
    base_url: z.url({ protocol: /^https?$/ }).optional(),
    owner: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,100}$/, { message: 'must be a user or organisation name' }),
    repo: z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, { message: 'must be a repository name' }),
    /** The environment variable holding the API token (the daemon resolves it). @default "PIT_ISSUES_TOKEN" */
    token_env: EnvNameSchema.default('PIT_ISSUES_TOKEN'),
    /** Labels put on death issues (created on Gitea when missing). @default ["pit", "agent-dead"] */
    labels: z.array(z.string().min(1).max(50)).max(10).default(['pit', 'agent-dead']),
    /** Log lines included in the post-mortem. @default 50 */
    max_log_lines: z.int().min(0).max(1000).default(50),
    /** Pages of open issues searched for an existing issue before opening one. @default 10 */
    max_pages: z.int().min(1).max(100).default(10),
    /** Deadline of one API call (ms). @default 15000 */
    timeout_ms: z.int().min(100).default(15_000),
  })
  .refine((config) => config.provider === 'github' || config.base_url !== undefined, {
    message: 'base_url is required for gitea (https://<host>/api/v1)',
    path: ['base_url'],
  });
export type IssuesConfig = z.infer<typeof IssuesConfigSchema>;

/** Options of {@link createIssueTracker}. */
export interface IssueTrackerOptions {
  /** The `[issues]` config. */
  config: z.input<typeof IssuesConfigSchema>;
  /** The API token, resolved by the caller from `config.token_env`. Never logged. */
  token: string;
  logger?: Logger;
  /** Clock. @default () => new Date() */
  clock?: () => Date;
  /** Retry policy for transient failures (network, 5xx, rate limits). */
  retry?: RetryOptions;
}

/** A death issue. */
export interface IssueRef {
  number: number;
  url: string;
  title: string;
}

/** What {@link IssueTracker.reportDeath} did. */
export interface DeathIssueResult extends IssueRef {
  /** True when a new issue was opened; false when an open one existed. */
  created: boolean;
  /** True when a comment was added to an existing issue (a new death episode). */
  commented: boolean;
}

/** Opens, updates and closes one issue per dead agent. */
export interface IssueTracker {
  /**
   * Opens the agent's death issue with a post-mortem body, or, if an open one exists (after a
   * daemon restart too), comments on it when this is a new death episode and leaves it alone
   * when the episode is already recorded.
   * @throws {NotifyError} NOTIFY_INVALID_INPUT; NOTIFY_UNAUTHORIZED; NOTIFY_SEND_FAILED / NOTIFY_TIMEOUT after retries.
   */
  reportDeath(report: DeathReportInput): Promise<DeathIssueResult>;
  /**
   * Comments on the agent's open death issue and closes it. Returns null when there is none.
   * @throws {NotifyError} as {@link IssueTracker.reportDeath}.
   */
  reportRecovery(input: {
    agent: string;
    /** The agent's cell: two cells' agents of one name have an issue each. */
    cell_uuid?: string;
    at?: Date;
    note?: string;
  }): Promise<IssueRef | null>;
  /** The agent's open death issue, if any (searched, not cached). */
  findOpenIssue(agent: string, cellUuid?: string): Promise<IssueRef | null>;
}

const IssueSchema = z.looseObject({
  number: z.int().positive(),
  title: z.string(),
  body: z.string().nullable().optional(),
  html_url: z.string(),
  state: z.string(),
  pull_request: z.unknown().optional(),
});
const CommentSchema = z.looseObject({ id: z.number(), body: z.string().nullable().optional() });
const LabelSchema = z.looseObject({ id: z.int(), name: z.string() });

/**
 * The title prefix that identifies an agent's death issue: `[pit] <first 8 of the cell uuid>/<agent>:`
 * for an agent in a cell (two cells may each have a `scout`), `[pit] <agent>:` outside cells.
 */
export function issueTitlePrefix(agent: string, cellUuid?: string): string {
  return cellUuid ? `[pit] ${cellUuid.slice(0, 8)}/${agent}:` : `[pit] ${agent}:`;
}

/**
 * Creates the issue tracker for GitHub or Gitea (the same Octokit client, another `baseUrl`).
 *
 * @example
 * const issues = createIssueTracker({
 *   config: { provider: 'gitea', base_url: 'https://git.example/api/v1', owner: 'ops', repo: 'fleet' },
 *   token: env[config.issues.token_env],
 * });
 * await issues.reportDeath({ agent: 'scout', mission: 'survey', reason: 'no heartbeat for 120 s', dead_since: new Date() });
 * @throws {NotifyError} NOTIFY_INVALID_CONFIG.
 */
export function createIssueTracker(options: IssueTrackerOptions): IssueTracker {
  const config = parseConfig(IssuesConfigSchema, options.config, 'issues');
  if (typeof options.token !== 'string' || !/^\S{8,}$/.test(options.token)) {
    throw new NotifyError(
      'NOTIFY_INVALID_CONFIG',
      `[issues] the token from ${config.token_env} is empty or malformed`,
    );
  }
  const logger = redactingLogger(options.logger ?? silentLogger, [options.token]);
  const clock = options.clock ?? (() => new Date());
  const gitea = config.provider === 'gitea';
  const pageSize = gitea ? 50 : 100;
  // @octokit/rest (about 10 MB of a process) is loaded on the first API call, not when the
  // package is imported, so that a daemon without [issues] never loads it.
  let octokit: Promise<Octokit> | undefined;
  const client = (): Promise<Octokit> =>
    (octokit ??= import('@octokit/rest').then(
      ({ Octokit: OctokitClass }) =>
        new OctokitClass({
          auth: options.token,
          baseUrl: (config.base_url ?? 'https://api.github.com').replace(/\/+$/, ''),
          userAgent: 'pit-notify',
          log: {
            debug: (message: string) => logger.debug(`issues: ${message}`),
            info: (message: string) => logger.debug(`issues: ${message}`),
            warn: (message: string) => logger.warn(`issues: ${message}`),
            error: (message: string) => logger.error(`issues: ${message}`),
          },
        }),
    ));
  const repoParams = { owner: config.owner, repo: config.repo };
  const queues = new Map<string, Promise<unknown>>();

  function serialized<T>(agent: string, work: () => Promise<T>): Promise<T> {
    const previous = queues.get(agent) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    queues.set(agent, next);
    void next
      .finally(() => {
        if (queues.get(agent) === next) queues.delete(agent);
      })
      .catch(() => undefined);
    return next;
  }

  function toNotifyError(what: string, error: unknown): NotifyError {
    if (error instanceof NotifyError) return error;
    const status =
      typeof (error as { status?: unknown }).status === 'number'
        ? (error as { status: number }).status
        : undefined;
    const headers = ((error as { response?: { headers?: Record<string, string | undefined> } })
      .response?.headers ?? {}) as Record<string, string | undefined>;
    const message = describeError(error);
    if (status === 401)
      return new NotifyError('NOTIFY_UNAUTHORIZED', `issues ${what}: the token was refused (401)`, {
        cause: error,
      });
    if (
      status === 429 ||
      (status === 403 &&
        (headers['retry-after'] !== undefined || headers['x-ratelimit-remaining'] === '0'))
    ) {
      const after = Number(headers['retry-after']);
      return new NotifyError('NOTIFY_RATE_LIMITED', `issues ${what}: rate limited (${status})`, {
        cause: error,
        retryable: true,
        ...(Number.isFinite(after) ? { retryAfterMs: after * 1000 } : {}),
      });
    }
    if (status !== undefined && status < 500)
      return new NotifyError('NOTIFY_SEND_FAILED', `issues ${what}: ${status} ${message}`, {
        cause: error,
      });
    return new NotifyError(
      'NOTIFY_SEND_FAILED',
      `issues ${what}: ${status ?? 'network'} ${message}`,
      { cause: error, retryable: true },
    );
  }

  async function api<T>(
    what: string,
    route: string,
    parameters: Record<string, unknown>,
  ): Promise<{ status: number; data: T }> {
    return deliverWithRetry(
      async (signal) => {
        try {
          const response = await (
            await client()
          ).request(route, {
            ...repoParams,
            ...parameters,
            request: { signal },
          });
          return { status: response.status, data: response.data as T };
        } catch (error) {
          throw toNotifyError(what, error);
        }
      },
      {
        ...options.retry,
        attemptTimeoutMs: options.retry?.attemptTimeoutMs ?? config.timeout_ms,
        what: `issues ${what}`,
        logger,
      },
    );
  }

  function parseList<T extends z.ZodType>(
    schema: T,
    data: unknown,
    what: string,
  ): Array<z.infer<T>> {
    const parsed = z.array(schema).safeParse(data);
    if (!parsed.success)
      throw new NotifyError(
        'NOTIFY_REMOTE',
        `issues ${what}: unexpected answer: ${formatIssues(parsed.error)}`,
      );
    return parsed.data;
  }

  function pageParams(page: number): Record<string, unknown> {
    return gitea ? { page, limit: pageSize } : { page, per_page: pageSize };
  }

  /** An issue of this agent: its title prefix, or (opened before cells were told apart) the bare name's with the cell in the body. */
  function isTheAgents(
    issue: { title: string; body?: string | null | undefined },
    agent: string,
    cellUuid?: string,
  ): boolean {
    if (issue.title.startsWith(issueTitlePrefix(agent, cellUuid))) return true;
    return (
      cellUuid !== undefined &&
      issue.title.startsWith(issueTitlePrefix(agent)) &&
      (issue.body ?? '').includes(`\`${cellUuid}\``)
    );
  }

  async function searchOpen(
    agent: string,
    cellUuid?: string,
  ): Promise<(IssueRef & { body: string }) | null> {
    for (let page = 1; page <= config.max_pages; page += 1) {
      const { data } = await api<unknown>('list issues', 'GET /repos/{owner}/{repo}/issues', {
        state: 'open',
        ...(gitea ? { type: 'issues' } : { sort: 'created', direction: 'desc' }),
        ...pageParams(page),
      });
      const issues = parseList(IssueSchema, data, 'list issues');
      for (const issue of issues) {
        if (issue.pull_request !== undefined && issue.pull_request !== null) continue;
        if (issue.state !== 'open' || !isTheAgents(issue, agent, cellUuid)) continue;
        return {
          number: issue.number,
          url: issue.html_url,
          title: issue.title,
          body: issue.body ?? '',
        };
      }
      if (issues.length < pageSize) break;
    }
    return null;
  }

  async function hasMarker(issue: IssueRef & { body: string }, marker: string): Promise<boolean> {
    if (issue.body.includes(marker)) return true;
    for (let page = 1; page <= config.max_pages; page += 1) {
      const { data } = await api<unknown>(
        'list comments',
        'GET /repos/{owner}/{repo}/issues/{issue_number}/comments',
        { issue_number: issue.number, ...pageParams(page) },
      );
      const comments = parseList(CommentSchema, data, 'list comments');
      if (comments.some((comment) => (comment.body ?? '').includes(marker))) return true;
      if (comments.length < pageSize) break;
    }
    return false;
  }

  async function ensureGiteaLabels(): Promise<number[]> {
    const existing: Array<z.infer<typeof LabelSchema>> = [];
    for (let page = 1; page <= config.max_pages; page += 1) {
      const { data } = await api<unknown>(
        'list labels',
        'GET /repos/{owner}/{repo}/labels',
        pageParams(page),
      );
      const labels = parseList(LabelSchema, data, 'list labels');
      existing.push(...labels);
      if (labels.length < pageSize) break;
    }
    const ids: number[] = [];
    for (const name of config.labels) {
      const found = existing.find((label) => label.name === name);
      if (found) {
        ids.push(found.id);
        continue;
      }
      const { data } = await api<unknown>('create label', 'POST /repos/{owner}/{repo}/labels', {
        name,
        color: name === 'agent-dead' ? '#d73a4a' : '#5319e7',
      });
      const created = LabelSchema.safeParse(data);
      if (!created.success)
        throw new NotifyError(
          'NOTIFY_REMOTE',
          `issues create label ${name}: unexpected answer: ${formatIssues(created.error)}`,
        );
      ids.push(created.data.id);
    }
    return ids;
  }

  async function open(title: string, body: string): Promise<IssueRef> {
    const { data } = await api<unknown>('create issue', 'POST /repos/{owner}/{repo}/issues', {
      title,
      body,
      ...(gitea || config.labels.length === 0 ? {} : { labels: config.labels }),
    });
    const parsed = IssueSchema.safeParse(data);
    if (!parsed.success)
      throw new NotifyError(
        'NOTIFY_REMOTE',
        `issues create issue: unexpected answer: ${formatIssues(parsed.error)}`,
      );
    const issue = {
      number: parsed.data.number,
      url: parsed.data.html_url,
      title: parsed.data.title,
    };
    if (gitea && config.labels.length > 0) {
      // Gitea takes label ids on create; add them by a separate call once they surely exist.
      try {
        const ids = await ensureGiteaLabels();
        await api('add labels', 'POST /repos/{owner}/{repo}/issues/{issue_number}/labels', {
          issue_number: issue.number,
          labels: ids,
        });
      } catch (error) {
        logger.warn(
          `issues: opened #${issue.number} but could not label it: ${describeError(error)}`,
          { issue: issue.number },
        );
      }
    }
    return issue;
  }

  return {
    reportDeath(input) {
      const parsed = DeathReportSchema.safeParse(input);
      if (!parsed.success)
        return Promise.reject(
          new NotifyError('NOTIFY_INVALID_INPUT', `death report: ${formatIssues(parsed.error)}`),
        );
      const report = parsed.data;
      return serialized(`${report.cell_uuid ?? ''}/${report.agent}`, async () => {
        const now = clock();
        const body = renderPostMortem(report, { now, maxLogLines: config.max_log_lines });
        const existing = await searchOpen(report.agent, report.cell_uuid);
        if (existing) {
          const marker = deathMarker(report);
          if (await hasMarker(existing, marker)) {
            logger.info(`issues: ${report.agent} already has #${existing.number} for this death`, {
              agent: report.agent,
              issue: existing.number,
            });
            return {
              number: existing.number,
              url: existing.url,
              title: existing.title,
              created: false,
              commented: false,
            };
          }
          await api('comment', 'POST /repos/{owner}/{repo}/issues/{issue_number}/comments', {
            issue_number: existing.number,
            body: `Died again.\n\n${body}`,
          });
          logger.info(`issues: ${report.agent} died again; commented on #${existing.number}`, {
            agent: report.agent,
            issue: existing.number,
          });
          return {
            number: existing.number,
            url: existing.url,
            title: existing.title,
            created: false,
            commented: true,
          };
        }
        const title =
          `${issueTitlePrefix(report.agent, report.cell_uuid)} dead in ${report.mission.replace(/\s+/g, ' ').slice(0, 60)} — ${report.reason.replace(/\s+/g, ' ')}`.slice(
            0,
            200,
          );
        const issue = await open(title, body);
        logger.info(`issues: opened #${issue.number} for ${report.agent}`, {
          agent: report.agent,
          issue: issue.number,
        });
        return { ...issue, created: true, commented: false };
      });
    },

    reportRecovery(input) {
      const agent = AgentNameSchema.safeParse(input.agent);
      if (!agent.success)
        return Promise.reject(
          new NotifyError('NOTIFY_INVALID_INPUT', `recovery: agent: ${formatIssues(agent.error)}`),
        );
      return serialized(`${input.cell_uuid ?? ''}/${agent.data}`, async () => {
        const existing = await searchOpen(agent.data, input.cell_uuid);
        if (!existing) return null;
        const at = input.at ?? clock();
        const deadSince = /since=(\S+) -->/.exec(existing.body)?.[1];
        const downtime =
          deadSince && !Number.isNaN(Date.parse(deadSince))
            ? ` after ${formatDuration(at.getTime() - Date.parse(deadSince))}`
            : '';
        const note = input.note ? `\n\n${input.note}` : '';
        await api('comment', 'POST /repos/{owner}/{repo}/issues/{issue_number}/comments', {
          issue_number: existing.number,
          body: `✅ \`${agent.data}\` recovered at ${at.toISOString()}${downtime}.${note}`,
        });
        await api('close issue', 'PATCH /repos/{owner}/{repo}/issues/{issue_number}', {
          issue_number: existing.number,
          state: 'closed',
          ...(gitea ? {} : { state_reason: 'completed' }),
        });
        logger.info(`issues: ${agent.data} recovered; closed #${existing.number}`, {
          agent: agent.data,
          issue: existing.number,
        });
        return { number: existing.number, url: existing.url, title: existing.title };
      });
    },

    async findOpenIssue(agent, cellUuid) {
      const found = await searchOpen(agent, cellUuid);
      return found ? { number: found.number, url: found.url, title: found.title } : null;
    },
  };
}
