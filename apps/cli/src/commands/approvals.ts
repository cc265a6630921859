import {
  approvalView,
  openApprovalStore,
  readApprovals,
  readDaemonFile,
  readDaemonLock,
  type PitConfig,
} from '@pit/daemon';
import { RefusedError, UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import type { CommandContext } from '../context.js';
import { formatAge, renderTable } from '../output.js';

/** `pit approvals [--all] [--json]`: the approval requests (pending ones unless --all). */
export async function listApprovals(
  context: CommandContext,
  options: { all?: boolean; json?: boolean },
): Promise<number> {
  const { config } = await context.config();
  const approvals = (await readApprovals(config.daemon.state_dir)).filter(
    (approval) => options.all || approval.status === 'pending',
  );
  if (options.json) {
    context.output.out(JSON.stringify({ approvals: approvals.map(approvalView) }, null, 2));
    return EXIT.ok;
  }
  if (approvals.length === 0) {
    context.output.out(options.all ? 'no approval requests' : 'no pending approval requests');
    return EXIT.ok;
  }
  const now = Date.now();
  context.output.out(
    renderTable(
      ['ID', 'AGENT', 'CELL', 'STATUS', 'PROPOSED', 'EXPIRES IN', 'REASONS'],
      approvals.map((approval) => [
        approval.id,
        approval.agent,
        approval.cell_uuid?.slice(0, 8),
        approval.status === 'pending'
          ? 'pending'
          : `${approval.status}${approval.decided_by ? ` by ${approval.decided_by}` : ''}${approval.decided_via ? ` via ${approval.decided_via}` : ''}`,
        `${approval.proposed}${approval.substitute ? ` → ${approval.substitute}` : ''}`,
        approval.status === 'pending' ? formatAge((approval.expires_at - now) / 1000) : undefined,
        approval.reasons.join('; ').slice(0, 80),
      ]),
    ),
  );
  context.output.out(`\napprove: pit approve ID   deny: pit deny ID --reason "…"`);
  return EXIT.ok;
}

/** Where a running daemon answers HTTP: what it recorded in its state dir (`daemon.json`), else the configured address. */
export async function daemonUrl(config: PitConfig): Promise<string> {
  const recorded = (await readDaemonFile(config.daemon.state_dir))?.url;
  if (recorded !== undefined && /^https?:\/\//.test(recorded)) return recorded;
  const listen = config.daemon.http.listen;
  if (!config.daemon.http.enabled || listen.endsWith(':0')) {
    throw new RefusedError(
      `the running daemon's HTTP API is ${config.daemon.http.enabled ? `on an ephemeral port (${listen})` : 'disabled'}; answer on the dashboard or a chat channel, or give it a fixed [daemon.http].listen`,
    );
  }
  return `http://${listen}`;
}

/**
 * `pit approve ID` / `pit deny ID [--reason R]`. With a daemon running the answer goes through
 * its HTTP API (the token from the environment variable `[daemon.http].token_env` names) so the
 * daemon acts at once; with none running it is recorded in the state directory and the next
 * `pit sweep --once` (or daemon start) carries it out. Single use: a decided or expired request
 * is refused (exit 1).
 */
export async function decide(
  context: CommandContext,
  decision: 'approve' | 'deny',
  id: string,
  options: { reason?: string; json?: boolean; as?: string },
): Promise<number> {
  const { config } = await context.config();
  const by = `${context.actor} (cli)`;
  const approver = options.as === undefined ? undefined : config.daemon.http.approvers[options.as];
  if (options.as !== undefined && !approver)
    throw new UsageError(
      `--as ${options.as}: no such approver in [daemon.http.approvers] (configured: ${Object.keys(config.daemon.http.approvers).join(', ') || 'none'})`,
    );
  const holder = await readDaemonLock(config.daemon.state_dir).catch(() => undefined);
  let result: { ok: boolean; message?: string; reason?: string; agent?: unknown };
  if (holder) {
    // The operator's token, or a named approver's (`--as`): the daemon records the token's identity.
    const tokenEnv = approver?.token_env ?? config.daemon.http.token_env;
    const token = context.environment.env[tokenEnv];
    if (!token)
      throw new UsageError(
        `a daemon is running (pid ${holder.pid}): set ${tokenEnv} to its HTTP token to answer through it`,
      );
    const url = `${await daemonUrl(config)}/api/approvals/${encodeURIComponent(id)}/${decision}`;
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      // Who decided is the identity of the token (the daemon records it), never a claim in the body.
      body: JSON.stringify(options.reason ? { reason: options.reason } : {}),
    }).catch((error: Error) => {
      throw new RefusedError(`cannot reach the daemon at ${url}: ${error.message}`);
    });
    const body = (await response.json().catch(() => ({}))) as {
      error?: string;
      message?: string;
      reason?: string;
      agent?: unknown;
    };
    if (response.status === 401 || response.status === 403)
      throw new RefusedError(`the daemon refused the token in ${tokenEnv} (${response.status})`);
    result = response.ok
      ? { ok: true, agent: body.agent }
      : {
          ok: false,
          message: body.message ?? body.error ?? `HTTP ${response.status}`,
          ...(body.reason ? { reason: body.reason } : {}),
        };
  } else {
    const store = await openApprovalStore({ stateDir: config.daemon.state_dir });
    try {
      const answer = await store.decide(id, decision, {
        by,
        channel: 'cli',
        now: Date.now(),
        ...(options.reason ? { reason: options.reason } : {}),
      });
      result = answer.ok
        ? { ok: true, agent: answer.agent }
        : { ok: false, message: answer.message, reason: answer.reason };
    } finally {
      await store.close();
    }
  }
  if (options.json) context.output.out(JSON.stringify({ id, decision, ...result }, null, 2));
  if (!result.ok) throw new RefusedError(`${decision} ${id}: ${result.message ?? 'refused'}`);
  if (!options.json) {
    const verb = decision === 'approve' ? 'approved' : 'denied';
    context.output.out(
      holder
        ? `${verb} ${id}${result.agent ? ` (${String(result.agent)})` : ''}: the daemon acts on it now`
        : `${verb} ${id}${result.agent ? ` (${String(result.agent)})` : ''}: no daemon is running; the next \`pit sweep --once\` or daemon start carries it out`,
    );
  }
  return EXIT.ok;
}
