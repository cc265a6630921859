/**
 * A local HTTP server that speaks the part of the GitHub REST API (`/repos/{owner}/{repo}/…`)
 * or the Gitea API (`/api/v1/repos/{owner}/{repo}/…`) that @pit/notify uses for issues, so
 * the real Octokit can be pointed at it with `baseUrl`. The Gitea flavour reproduces Gitea's
 * differences: labels on create are ids (names are refused), labels are added by a separate
 * call and must exist, listing pages with `page`/`limit` (ignoring `per_page`) and includes
 * pull requests unless `type=issues`, and closing an issue answers 201.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FaultBook, readBody, sendJson, Waiters, type Fault } from './http-util.js';

/** Which forge to imitate. */
export type IssuesFlavour = 'github' | 'gitea';

/** An issue or pull request held by the server. */
export interface StoredIssue {
  number: number;
  title: string;
  body: string;
  state: 'open' | 'closed';
  labels: string[];
  comments: Array<{ id: number; body: string }>;
  isPull: boolean;
}

/** One request the server received. */
export interface IssuesCall {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  status?: number;
}

/** A running fake issues API. */
export interface TestIssuesApi {
  readonly flavour: IssuesFlavour;
  /** Pass as Octokit's `baseUrl` (or `[issues] base_url`). */
  readonly baseUrl: string;
  readonly owner: string;
  readonly repo: string;
  readonly issues: StoredIssue[];
  readonly labels: Array<{ id: number; name: string; color: string }>;
  readonly calls: IssuesCall[];
  /** Adds a pull request (to prove that listing skips them). */
  addPullRequest(title: string): StoredIssue;
  /** Adds an issue directly. */
  addIssue(issue: Partial<StoredIssue> & { title: string }): StoredIssue;
  /** Makes the next `times` requests for `key` (`"<METHOD> <route>"`, e.g. `"POST /issues"`, `"GET /issues"`) fail or hang. */
  fault(key: string, fault: Fault, times?: number): void;
  /** Waits for a request matching the predicate. */
  waitForCall(predicate: (call: IssuesCall) => boolean, timeoutMs?: number): Promise<IssuesCall>;
  close(): Promise<void>;
}

/** Starts the fake API on 127.0.0.1. Requests without `Authorization: token <token>` (or Bearer) get 401. */
export async function startIssuesApi(options: {
  flavour: IssuesFlavour;
  token: string;
  owner?: string;
  repo?: string;
}): Promise<TestIssuesApi> {
  const flavour = options.flavour;
  const owner = options.owner ?? 'ops';
  const repo = options.repo ?? 'fleet';
  const issues: StoredIssue[] = [];
  const labels: Array<{ id: number; name: string; color: string }> = [];
  const calls: IssuesCall[] = [];
  const faults = new FaultBook();
  const waiters = new Waiters();
  let nextNumber = 1;
  let nextLabelId = 100;
  let nextCommentId = 1000;
  let base = '';

  const prefix = flavour === 'gitea' ? '/api/v1' : '';

  function issueJson(issue: StoredIssue): Record<string, unknown> {
    const html = `${base.replace(/\/api\/v1$/, '')}/${owner}/${repo}/${issue.isPull ? 'pull' : 'issues'}/${issue.number}`;
    const labelObjects = issue.labels.map(
      (name) => labels.find((label) => label.name === name) ?? { id: 0, name, color: 'ededed' },
    );
    const common = {
      id: issue.number * 10,
      number: issue.number,
      title: issue.title,
      body: issue.body,
      state: issue.state,
      labels: labelObjects,
      comments: issue.comments.length,
      html_url: html,
      url: `${base}/repos/${owner}/${repo}/issues/${issue.number}`,
    };
    if (flavour === 'github')
      return issue.isPull
        ? {
            ...common,
            pull_request: { url: `${base}/repos/${owner}/${repo}/pulls/${issue.number}` },
          }
        : common;
    return { ...common, pull_request: issue.isPull ? { merged: false, html_url: html } : null };
  }

  function ensureLabel(name: string): { id: number; name: string; color: string } {
    const existing = labels.find((label) => label.name === name);
    if (existing) return existing;
    const created = { id: nextLabelId++, name, color: 'ededed' };
    labels.push(created);
    return created;
  }

  function paginate<T>(
    items: T[],
    query: Record<string, string>,
    response: ServerResponse,
    path: string,
  ): T[] {
    const page = Math.max(1, Number.parseInt(query.page ?? '1', 10) || 1);
    const size =
      flavour === 'github'
        ? Math.min(100, Math.max(1, Number.parseInt(query.per_page ?? '30', 10) || 30))
        : Math.min(50, Math.max(1, Number.parseInt(query.limit ?? '20', 10) || 20));
    const slice = items.slice((page - 1) * size, page * size);
    const last = Math.max(1, Math.ceil(items.length / size));
    const links: string[] = [];
    const link = (target: number, rel: string) => {
      const params = new URLSearchParams({ ...query, page: String(target) });
      return `<${base}${path}?${params.toString()}>; rel="${rel}"`;
    };
    if (page < last) links.push(link(page + 1, 'next'), link(last, 'last'));
    if (page > 1) links.push(link(1, 'first'), link(page - 1, 'prev'));
    if (links.length > 0) response.setHeader('link', links.join(', '));
    if (flavour === 'gitea') response.setHeader('x-total-count', String(items.length));
    return slice;
  }

  function authorised(request: IncomingMessage): boolean {
    const header = request.headers.authorization ?? '';
    return (
      header === `token ${options.token}` ||
      header === `Bearer ${options.token}` ||
      header === `bearer ${options.token}`
    );
  }

  async function route(
    request: IncomingMessage,
    response: ServerResponse,
    call: IssuesCall,
  ): Promise<void> {
    const method = request.method ?? 'GET';
    const path = call.path;
    const repoPrefix = `${prefix}/repos/${owner}/${repo}`;
    if (!path.startsWith(repoPrefix)) return sendJson(response, 404, { message: 'Not Found' });
    const rest = path.slice(repoPrefix.length);
    const body = (call.body ?? {}) as Record<string, unknown>;
    const query = call.query;
    let match: RegExpExecArray | null;

    if (rest === '/issues' && method === 'GET') {
      const state = query.state ?? 'open';
      let list = issues.filter((issue) => state === 'all' || issue.state === state);
      if (flavour === 'gitea' && query.type === 'issues')
        list = list.filter((issue) => !issue.isPull);
      if (flavour === 'gitea' && query.type === 'pulls')
        list = list.filter((issue) => issue.isPull);
      if (query.labels) {
        const wanted = query.labels.split(',').filter(Boolean);
        list = list.filter((issue) => wanted.every((name) => issue.labels.includes(name)));
      }
      list = [...list].sort((a, b) => b.number - a.number);
      return sendJson(response, 200, paginate(list, query, response, path).map(issueJson));
    }
    if (rest === '/issues' && method === 'POST') {
      if (typeof body.title !== 'string' || body.title.length === 0)
        return sendJson(response, 422, {
          message: 'Validation Failed',
          errors: [{ field: 'title', code: 'missing_field' }],
        });
      const requested = Array.isArray(body.labels) ? (body.labels as unknown[]) : [];
      let names: string[] = [];
      if (flavour === 'gitea') {
        if (requested.some((label) => typeof label !== 'number')) {
          return sendJson(response, 422, {
            message:
              '[]: json: cannot unmarshal string into Go struct field CreateIssueOption.labels of type int64',
          });
        }
        for (const id of requested) {
          const label = labels.find((candidate) => candidate.id === id);
          if (!label)
            return sendJson(response, 422, { message: `label ${String(id)} does not exist` });
          names.push(label.name);
        }
      } else {
        names = requested.map((label) => ensureLabel(String(label)).name);
      }
      const issue: StoredIssue = {
        number: nextNumber++,
        title: body.title,
        body: typeof body.body === 'string' ? body.body : '',
        state: 'open',
        labels: names,
        comments: [],
        isPull: false,
      };
      issues.push(issue);
      return sendJson(response, 201, issueJson(issue));
    }
    if ((match = /^\/issues\/(\d+)$/.exec(rest)) && method === 'PATCH') {
      const issue = issues.find((candidate) => candidate.number === Number(match?.[1]));
      if (!issue) return sendJson(response, 404, { message: 'Not Found' });
      if (body.state === 'open' || body.state === 'closed') issue.state = body.state;
      if (typeof body.title === 'string') issue.title = body.title;
      if (typeof body.body === 'string') issue.body = body.body;
      return sendJson(response, flavour === 'gitea' ? 201 : 200, issueJson(issue));
    }
    if ((match = /^\/issues\/(\d+)$/.exec(rest)) && method === 'GET') {
      const issue = issues.find((candidate) => candidate.number === Number(match?.[1]));
      return issue
        ? sendJson(response, 200, issueJson(issue))
        : sendJson(response, 404, { message: 'Not Found' });
    }
    if ((match = /^\/issues\/(\d+)\/comments$/.exec(rest))) {
      const issue = issues.find((candidate) => candidate.number === Number(match?.[1]));
      if (!issue) return sendJson(response, 404, { message: 'Not Found' });
      if (method === 'GET') {
        const list = paginate(issue.comments, query, response, path);
        return sendJson(
          response,
          200,
          list.map((comment) => ({ id: comment.id, body: comment.body })),
        );
      }
      if (method === 'POST') {
        if (typeof body.body !== 'string' || body.body.length === 0)
          return sendJson(response, 422, { message: 'Validation Failed' });
        const comment = { id: nextCommentId++, body: body.body };
        issue.comments.push(comment);
        return sendJson(response, 201, {
          id: comment.id,
          body: comment.body,
          html_url: `${base}/${owner}/${repo}/issues/${issue.number}#issuecomment-${comment.id}`,
        });
      }
    }
    if ((match = /^\/issues\/(\d+)\/labels$/.exec(rest)) && method === 'POST') {
      const issue = issues.find((candidate) => candidate.number === Number(match?.[1]));
      if (!issue) return sendJson(response, 404, { message: 'Not Found' });
      const requested = Array.isArray(body.labels) ? (body.labels as unknown[]) : [];
      const found = requested.map((wanted) =>
        labels.find((label) => label.id === wanted || label.name === wanted),
      );
      if (found.some((label) => label === undefined)) {
        if (flavour === 'gitea')
          return sendJson(response, 422, { message: 'label does not exist' });
      }
      const names =
        flavour === 'gitea'
          ? found.map((label) => label?.name ?? '')
          : requested.map((name) => ensureLabel(String(name)).name);
      for (const name of names) if (!issue.labels.includes(name)) issue.labels.push(name);
      return sendJson(
        response,
        200,
        issue.labels.map((name) => labels.find((label) => label.name === name)),
      );
    }
    if (rest === '/labels' && method === 'GET') {
      return sendJson(response, 200, paginate(labels, query, response, path));
    }
    if (rest === '/labels' && method === 'POST') {
      if (typeof body.name !== 'string' || body.name.length === 0)
        return sendJson(response, 422, { message: 'name is required' });
      if (typeof body.color !== 'string' || !/^#?[0-9a-fA-F]{6}$/.test(body.color))
        return sendJson(response, 422, { message: 'color is invalid' });
      if (labels.some((label) => label.name === body.name))
        return sendJson(response, 409, { message: 'label already exists' });
      const label = { id: nextLabelId++, name: body.name, color: body.color.replace(/^#/, '') };
      labels.push(label);
      return sendJson(response, 201, label);
    }
    return sendJson(response, 404, { message: `Not Found: ${method} ${path}` });
  }

  function routeKey(method: string, path: string): string {
    const rest = path.replace(`${prefix}/repos/${owner}/${repo}`, '').replace(/\/\d+/g, '/:n');
    return `${method} ${rest}`;
  }

  const server = createServer((request, response) => {
    void (async () => {
      const url = new URL(request.url ?? '/', 'http://x');
      let body: unknown;
      try {
        const text = await readBody(request);
        body = text.length > 0 ? JSON.parse(text) : undefined;
      } catch {
        return sendJson(response, 400, { message: 'Problems parsing JSON' });
      }
      const call: IssuesCall = {
        method: request.method ?? 'GET',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        body,
      };
      calls.push(call);
      waiters.notify();
      if (!authorised(request)) {
        call.status = 401;
        return sendJson(response, 401, { message: 'Bad credentials' });
      }
      const fault = faults.take(routeKey(call.method, call.path));
      if (fault && 'hang' in fault) return;
      if (fault) {
        call.status = fault.status;
        return sendJson(
          response,
          fault.status,
          fault.body ?? { message: `Injected failure ${fault.status}` },
          fault.headers,
        );
      }
      await route(request, response, call);
      call.status = response.statusCode;
      waiters.notify();
    })().catch((error: unknown) =>
      sendJson(response, 500, { message: `test server error: ${String(error)}` }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}${prefix}`;

  return {
    flavour,
    baseUrl: base,
    owner,
    repo,
    issues,
    labels,
    calls,
    addPullRequest(title) {
      const pull: StoredIssue = {
        number: nextNumber++,
        title,
        body: '',
        state: 'open',
        labels: [],
        comments: [],
        isPull: true,
      };
      issues.push(pull);
      return pull;
    },
    addIssue(input) {
      const issue: StoredIssue = {
        body: '',
        state: 'open',
        labels: [],
        comments: [],
        isPull: false,
        ...input,
        number: nextNumber++,
      };
      issues.push(issue);
      return issue;
    },
    fault: (key, fault, times) => faults.add(key, fault, times),
    waitForCall(predicate, timeoutMs = 10_000) {
      return waiters.wait(() => calls.find(predicate), timeoutMs, 'an issues API call');
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
