/**
 * The MCP server's action tools, annotated `destructiveHint`: `pit_approve`, `pit_deny`,
 * `pit_restart`, `pit_stop`. They are registered only for a configured approver when `[mcp]
 * actions` is on (mcp-server.ts decides), carry the caller's identity into the decision, and
 * refuse — and log — any request that names the caller's own agent: an agent never approves,
 * restarts or stops itself through MCP.
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { resolveAgentRef } from './agent-ref.js';
import type { Logger } from './logger.js';
import type { McpActionResult, McpBackend, McpCaller } from './mcp-server.js';
import { structured, toolError } from './mcp-tools.js';

const DESTRUCTIVE = {
  readOnlyHint: false,
  destructiveHint: true,
  idempotentHint: false,
  openWorldHint: false,
} as const;
const ActionOutput = {
  ok: z.boolean(),
  message: z.string(),
  by: z.string(),
};

/** What the action tools need: the backend, the caller (an approver with an identity), a logger. */
interface ActionContext {
  backend: McpBackend;
  caller: McpCaller & { identity: string };
  logger?: Logger;
}

/** Registers the action tools on `server` for an approver. */
export function registerActionTools(server: McpServer, context: ActionContext): void {
  for (const decision of ['approve', 'deny'] as const) {
    server.registerTool(
      `pit_${decision}`,
      {
        title: decision === 'approve' ? 'Approve a revival' : 'Deny a revival',
        description: `${decision === 'approve' ? 'Approves' : 'Denies'} a pending approval request (pit_approvals lists them); recorded under your approver identity. An agent cannot answer a request about itself.`,
        inputSchema: {
          id: z
            .string()
            .regex(/^[A-Za-z0-9_.:-]{1,128}$/)
            .describe('the approval id'),
          reason: z.string().max(1000).optional().describe('why (shown in pit why)'),
        },
        outputSchema: ActionOutput,
        annotations: DESTRUCTIVE,
      },
      async ({ id, reason }) => decide(context, decision, id, reason),
    );
  }
  for (const action of ['restart', 'stop'] as const) {
    server.registerTool(
      `pit_${action}`,
      {
        title: action === 'restart' ? 'Restart an agent' : 'Stop an agent',
        description: `${action === 'restart' ? 'Restarts' : 'Stops (until pit start)'} an agent, named \`name\` or \`cell/name\`; recorded under your approver identity. An agent cannot ${action} itself.`,
        inputSchema: {
          agent: z.string().min(1).max(300).describe('the agent: name, or cell/name'),
          reason: z.string().max(1000).optional().describe('why (shown in pit why)'),
        },
        outputSchema: ActionOutput,
        annotations: DESTRUCTIVE,
      },
      async ({ agent, reason }) => control(context, action, agent, reason),
    );
  }
}

async function decide(
  context: ActionContext,
  decision: 'approve' | 'deny',
  id: string,
  reason: string | undefined,
): Promise<CallToolResult> {
  const { backend, caller } = context;
  const approval = (await backend.approvals()).find((entry) => entry.id === id);
  if (approval && isCaller(caller, approval.agent, approval.cell_uuid))
    return refuseSelf(context, `pit_${decision}`, { approval: id, agent: approval.agent });
  const result = await backend.decideApproval(id, decision, {
    by: caller.identity,
    ...(reason ? { reason } : {}),
  });
  return answer(result, caller.identity, `${decision} ${id}`);
}

async function control(
  context: ActionContext,
  action: 'restart' | 'stop',
  ref: string,
  reason: string | undefined,
): Promise<CallToolResult> {
  const { backend, caller } = context;
  if (caller.agent) {
    const { agents } = await backend.status();
    const resolved = resolveAgentRef(ref, agents);
    const target = resolved.ok ? agents.find((agent) => agent.key === resolved.key) : undefined;
    const named = ref.slice(ref.lastIndexOf('/') + 1);
    const self = target ? isCaller(caller, target.agent, target.cell) : named === caller.agent.name;
    if (self) return refuseSelf(context, `pit_${action}`, { agent: ref });
  }
  const result = await backend.control(ref, action, {
    by: caller.identity,
    ...(reason ? { reason } : {}),
  });
  return answer(result, caller.identity, `${action} ${ref}`);
}

/** Whether an agent (`name` in `cell`) is the caller's own. */
function isCaller(caller: McpCaller, name: string, cell: string | undefined): boolean {
  if (!caller.agent || caller.agent.name !== name) return false;
  const own = caller.agent.cell;
  return own === undefined || cell === undefined || cell.startsWith(own.toLowerCase());
}

function refuseSelf(
  context: ActionContext,
  tool: string,
  fields: Record<string, string>,
): CallToolResult {
  const { caller } = context;
  context.logger?.warn('mcp action refused: an agent cannot act on itself', {
    tool,
    by: caller.identity,
    caller_agent: caller.agent?.name,
    caller_cell: caller.agent?.cell,
    via: caller.via,
    ...fields,
  });
  return toolError(
    `refused: you are agent ${caller.agent?.name ?? '?'}${caller.agent?.cell ? ` of cell ${caller.agent.cell}` : ''}; an agent can never approve, deny, restart or stop itself through MCP`,
  );
}

function answer(
  result: McpActionResult | { ok: boolean; message?: string; [field: string]: unknown },
  by: string,
  what: string,
): CallToolResult {
  if (!result.ok) return toolError(`${what}: ${String(result.message ?? 'refused')}`);
  const message = typeof result.message === 'string' ? result.message : `${what}: done`;
  return structured({ ok: true, message, by });
}
