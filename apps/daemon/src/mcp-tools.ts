/**
 * The MCP server's read-only tools, each annotated `readOnlyHint` with an input schema and a
 * structured output schema: `pit_status`, `pit_dead_agents`, `pit_approvals`, `pit_why`,
 * `pit_logs`, `pit_bus_tail`, `pit_providers`. They read through the backend and the shared readers (the
 * agent's story, its log, the bus log); bad input and unknown names come back as tool errors
 * (`isError`), never as a crash. They change nothing.
 */
import { join } from 'node:path';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { AgentNameSchema, CellUuidSchema, readManifest } from '@pit/cell-spec';
import { readBusLog } from '@pit/mission-bus';
import { z } from 'zod';
import { findAgentLog, readStreamTails } from './agent-log.js';
import { readAgentStory } from './agent-story.js';
import { describeEvent } from './incidents.js';
import type { McpBackend } from './mcp-server.js';

/** The most bytes of log lines `pit_logs` returns (older lines are dropped first). */
export const MCP_LOG_MAX_BYTES = 256 * 1024;

const AgentStatusOutput = z.looseObject({
  key: z.string(),
  agent: z.string(),
  cell: z.string().optional(),
  mission: z.string().optional(),
  health: z.string(),
  since: z.string().optional(),
  first_dead_at: z.string().optional(),
  heartbeat_age_s: z.number().optional(),
  pid: z.number().optional(),
  revive_attempts: z.number(),
  restarts: z.number(),
  pending_approval: z.string().optional(),
});
const CellOutput = z.looseObject({
  uuid: z.string(),
  name: z.string().optional(),
  mission: z.string(),
  status: z.string(),
  agents: z.array(z.string()),
});
const ApprovalOutput = z.looseObject({
  id: z.string(),
  agent: z.string(),
  cell_uuid: z.string().optional(),
  status: z.string(),
  proposed: z.string(),
  reasons: z.array(z.string()),
});
const READ_ONLY = { readOnlyHint: true, destructiveHint: false, openWorldHint: false } as const;

/** A tool's structured answer, also given as JSON text for clients that read only text. */
export function structured(value: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value };
}

/** A tool error a model can read and correct (`isError`). */
export function toolError(message: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text: message }] };
}

/** Registers the read-only tools on `server`. */
export function registerReadTools(server: McpServer, backend: McpBackend): void {
  registerStatusTools(server, backend);
  registerWhy(server, backend);
  registerLogs(server, backend);
  registerBusTail(server, backend);
  registerProviders(server, backend);
}

const ProviderOutput = z.looseObject({
  provider: z.string(),
  status: z.enum(['healthy', 'degraded', 'dead', 'unknown']),
  since: z.string(),
  evidence: z.array(z.string()),
  checked_at: z.string().optional(),
});

function registerProviders(server: McpServer, backend: McpBackend): void {
  server.registerTool(
    'pit_providers',
    {
      title: 'Provider health matrix',
      description:
        'Each configured model provider (`[providers.<name>]`): healthy, degraded, dead or unknown, since when, and the evidence; and the agents that declare a provider, with the one they run on now and their reasons (primary_dead, primary_degraded). Over `pit mcp` with no daemon to ask, the matrix the daemon last persisted, with `providers_as_of` (`live: false`: what a stopped daemon last saw).',
      inputSchema: {},
      outputSchema: {
        generated_at: z.string(),
        providers: z.array(ProviderOutput),
        providers_as_of: z.object({ written_at: z.string(), live: z.boolean() }).optional(),
        agents: z.array(
          z.looseObject({
            key: z.string(),
            agent: z.string(),
            provider: z.object({ primary: z.string(), current: z.string(), status: z.string() }),
            reasons: z.array(z.string()),
          }),
        ),
      },
      annotations: READ_ONLY,
    },
    async () => {
      const status = await backend.status();
      return structured({
        generated_at: status.generated_at,
        providers: status.providers ?? [],
        ...(status.providers_as_of ? { providers_as_of: status.providers_as_of } : {}),
        agents: status.agents.flatMap((agent) =>
          agent.provider
            ? [
                {
                  key: agent.key,
                  agent: agent.agent,
                  provider: agent.provider,
                  reasons: agent.reasons ?? [],
                },
              ]
            : [],
        ),
      });
    },
  );
}

function registerStatusTools(server: McpServer, backend: McpBackend): void {
  server.registerTool(
    'pit_status',
    {
      title: 'Fleet status',
      description:
        'The supervised cells and agents: health, since when, heartbeat age, pid, revive attempts, pending approvals. Give `cell` (a cell uuid) for one cell.',
      inputSchema: { cell: CellUuidSchema.optional().describe('a cell uuid: only this cell') },
      outputSchema: {
        generated_at: z.string(),
        cells: z.array(CellOutput),
        agents: z.array(AgentStatusOutput),
        pending_approvals: z.number(),
        problems: z.array(z.string()),
      },
      annotations: READ_ONLY,
    },
    async ({ cell }) => {
      const status = await backend.status();
      if (cell !== undefined && !status.cells.some((entry) => entry.uuid === cell))
        return toolError(
          `cell ${cell}: not a supervised cell (pit_status without cell lists them)`,
        );
      return structured({
        generated_at: status.generated_at,
        cells: status.cells.filter((entry) => cell === undefined || entry.uuid === cell),
        agents: status.agents.filter((agent) => cell === undefined || agent.cell === cell),
        pending_approvals: status.approvals.length,
        problems: status.problems,
      });
    },
  );
  server.registerTool(
    'pit_dead_agents',
    {
      title: 'Dead agents',
      description: 'The agents the Pit holds dead now, with since when and the last decision.',
      inputSchema: {},
      outputSchema: { generated_at: z.string(), agents: z.array(AgentStatusOutput) },
      annotations: READ_ONLY,
    },
    async () => {
      const status = await backend.status();
      return structured({
        generated_at: status.generated_at,
        agents: status.agents.filter((agent) => agent.health === 'dead'),
      });
    },
  );
  server.registerTool(
    'pit_approvals',
    {
      title: 'Approval requests',
      description:
        'The approval requests waiting for a human (all of them, decided too, with all = true).',
      inputSchema: { all: z.boolean().optional().describe('decided and expired requests too') },
      outputSchema: { approvals: z.array(ApprovalOutput) },
      annotations: READ_ONLY,
    },
    async ({ all }) => {
      const approvals = await backend.approvals();
      return structured({
        approvals: approvals.filter((approval) => all === true || approval.status === 'pending'),
      });
    },
  );
}

function registerWhy(server: McpServer, backend: McpBackend): void {
  server.registerTool(
    'pit_why',
    {
      title: 'Why (an agent’s incidents)',
      description:
        "The story of an agent's last incidents from the event logs: the death, the rule that fired, approvals and who gave them, rollbacks, restarts.",
      inputSchema: {
        agent: AgentNameSchema.describe('the agent name'),
        last: z.number().int().min(1).max(20).optional().describe('how many incidents (default 3)'),
      },
      outputSchema: {
        agent: z.string(),
        incidents: z.array(
          z.object({
            cell: z.string().optional(),
            started: z.string(),
            outcome: z.string(),
            events: z.array(z.object({ ts: z.string(), event: z.string(), line: z.string() })),
          }),
        ),
        problems: z.array(z.string()),
      },
      annotations: READ_ONLY,
    },
    async ({ agent, last }) => {
      const story = await readAgentStory({
        cellsRoot: backend.cellsRoot,
        agent,
        extraLogs: [join(backend.stateDir, 'logs', 'events.jsonl')],
        configAgents: backend.configAgents,
      });
      if (!story.known)
        return toolError(`no agent named ${agent}: in no cell, not in the config, in no event log`);
      return structured({
        agent,
        incidents: story.incidents.slice(-(last ?? 3)).map((incident) => ({
          ...(incident.cell ? { cell: incident.cell } : {}),
          started: incident.started,
          outcome: incident.outcome,
          events: incident.events.map((event) => ({
            ts: event.ts,
            event: event.event,
            line: describeEvent(event),
          })),
        })),
        problems: story.problems.slice(0, 50),
      });
    },
  );
}

function registerLogs(server: McpServer, backend: McpBackend): void {
  server.registerTool(
    'pit_logs',
    {
      title: 'Agent output',
      description: `The last lines of an agent's output across its rotations: \`lines\` from its stdout log (<agent>.log), \`stderr\` from its stderr log (<agent>.err.log, where a crash's stack trace is); an agent with merge_stderr has both in \`lines\`. At most ${MCP_LOG_MAX_BYTES} bytes per stream.`,
      inputSchema: {
        agent: z
          .string()
          .min(1)
          .max(200)
          .describe('the agent: name, or cell/name when several cells have it'),
        lines: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .optional()
          .describe('how many lines of each stream (default 100)'),
        stream: z
          .enum(['stdout', 'stderr', 'both'])
          .optional()
          .describe('which output: stdout, stderr or both (default both)'),
      },
      outputSchema: {
        agent: z.string(),
        stream: z.enum(['stdout', 'stderr', 'both']),
        lines: z
          .array(z.string())
          .describe('stdout (stderr too with merge_stderr); stream "stderr": stderr'),
        stderr: z.array(z.string()).optional().describe('stream "both": the stderr log’s lines'),
        truncated: z.boolean(),
      },
      annotations: READ_ONLY,
    },
    async ({ agent, lines, stream = 'both' }) => {
      const found = await findAgentLog({
        cellsRoot: backend.cellsRoot,
        stateDir: () => Promise.resolve(backend.stateDir),
        ref: agent,
      }).catch((error: unknown) => ({
        ok: false as const,
        message: error instanceof Error ? error.message : String(error),
      }));
      if (!found.ok) return toolError(found.message);
      const name = found.log.label.split('/').at(-1)!;
      if (stream === 'stderr' && backend.mergesStderr?.(name))
        return toolError(
          `${found.log.label}: stderr is merged into logs/${name}.log for this agent (merge_stderr = true): ask for stream "stdout" or "both", or set merge_stderr = false and restart it to keep stderr apart`,
        );
      const tails = await readStreamTails(found.log, {
        count: lines ?? 100,
        maxBytes: MCP_LOG_MAX_BYTES,
        streams: stream === 'both' ? ['stdout', 'stderr'] : [stream],
      });
      return structured({
        agent: found.log.label,
        stream,
        lines: (stream === 'stderr' ? tails.stderr : tails.stdout) ?? [],
        ...(stream === 'both' ? { stderr: tails.stderr ?? [] } : {}),
        truncated: tails.truncated,
      });
    },
  );
}

function registerBusTail(server: McpServer, backend: McpBackend): void {
  server.registerTool(
    'pit_bus_tail',
    {
      title: 'Mission bus',
      description:
        "A cell's mission bus events (messages, checkpoints, handoffs) from a sequence number on, at most `limit`; `next_from` continues.",
      inputSchema: {
        cell: CellUuidSchema.describe('the cell uuid'),
        from: z.number().int().min(1).optional().describe('the first sequence number (default 1)'),
        limit: z
          .number()
          .int()
          .min(1)
          .max(500)
          .optional()
          .describe('at most this many (default 100)'),
      },
      outputSchema: {
        cell: z.string(),
        events: z.array(z.looseObject({ seq: z.number(), ts: z.string(), event: z.string() })),
        next_from: z.number(),
        more: z.boolean(),
        problems: z.array(z.string()),
      },
      annotations: READ_ONLY,
    },
    async ({ cell, from, limit }) => {
      const dir = join(backend.cellsRoot, cell);
      const manifest = await readManifest(dir).catch((error: unknown) =>
        error instanceof Error ? error : new Error(String(error)),
      );
      if (manifest instanceof Error) return toolError(`cell ${cell}: ${manifest.message}`);
      const bound = limit ?? 100;
      const events: Array<Record<string, unknown>> = [];
      const problems: string[] = [];
      let nextFrom = from ?? 1;
      let more = false;
      for await (const entry of readBusLog(dir, { after: nextFrom - 1 })) {
        if (!entry.ok) {
          if (!entry.torn) problems.push(`${entry.segment}:${entry.line}: ${entry.reason}`);
          continue;
        }
        if (events.length >= bound) {
          more = true;
          break;
        }
        events.push(entry.event as unknown as Record<string, unknown>);
        nextFrom = entry.event.seq + 1;
      }
      return structured({ cell, events, next_from: nextFrom, more, problems });
    },
  );
}
