/**
 * The Pit's MCP server (Model Context Protocol): who is calling (`McpCaller`), where the data and
 * the actions come from (`McpBackend`: the running daemon's supervisor behind `/mcp`, or the
 * files on disk and the daemon's HTTP API behind `pit mcp`), and the server itself, built per
 * caller: the read-only tools (./mcp-tools.ts), the action tools only for a configured approver
 * when `[mcp] actions` is on (./mcp-actions.ts), and the resources (./mcp-resources.ts). It owns
 * no transport: mcp-http.ts serves it over Streamable HTTP, `pit mcp` over stdio.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Approval, OperatorAction } from '@pit/cell-spec';
import type { ApprovalDecisionResult } from './http.js';
import type { Logger } from './logger.js';
import { registerActionTools } from './mcp-actions.js';
import { registerResources } from './mcp-resources.js';
import { registerReadTools } from './mcp-tools.js';
import type { FleetStatus } from './supervisor-api.js';

/** The outcome of an action carried out for MCP (an approval decision or a control). */
export type McpActionResult =
  | { ok: true; message: string; [field: string]: unknown }
  | { ok: false; message: string; reason?: string };

/** Where the MCP server reads the fleet and carries out actions. */
export interface McpBackend {
  /** The cells root (event logs, agent logs, bus logs are read from it). */
  cellsRoot: string;
  /** The daemon's state directory (logs of agents outside cells, the host event log). */
  stateDir: string;
  /** The agents of the config (an agent with no events yet is still known to `pit_why`). */
  configAgents: string[];
  /** Whether the agent's stderr is merged into its stdout log (`merge_stderr`). @default never */
  mergesStderr?(agent: string): boolean;
  /** The fleet as the daemon sees it (live) or as the files say. */
  status(): Promise<FleetStatus>;
  /** Every approval request, pending and decided. */
  approvals(): Promise<Approval[]>;
  /** Answers an approval request under the caller's identity. */
  decideApproval(
    id: string,
    decision: 'approve' | 'deny',
    answer: { by: string; reason?: string },
  ): Promise<ApprovalDecisionResult | McpActionResult>;
  /** An operator's control of one agent under the caller's identity. */
  control(
    ref: string,
    action: Extract<OperatorAction, 'restart' | 'stop'>,
    request: { by: string; reason?: string },
  ): Promise<McpActionResult>;
}

/** Who is calling: the identity a token authenticated, and the agent the caller is, if any. */
export interface McpCaller {
  /** The authenticated identity (`operator`, an approver's name), if any. */
  identity?: string;
  /** Whether the identity is a configured approver (`[daemon.http.approvers.<name>]`). */
  approver: boolean;
  /** The agent the caller is (an approver bound to an agent, or `LAZARUS_AGENT` over stdio). */
  agent?: { name: string; cell?: string };
  /** How the caller came (`http`, `stdio`), for the log. */
  via: 'http' | 'stdio';
}

/** Options of {@link createPitMcpServer}. */
export interface PitMcpServerOptions {
  backend: McpBackend;
  caller: McpCaller;
  /** `[mcp] actions`: offer the action tools to an approver. @default false */
  actions?: boolean;
  logger?: Logger;
  /** The version the server reports. @default '0.1.0' */
  version?: string;
}

/**
 * Builds the Pit's MCP server for one caller. The action tools exist only when `actions` is on
 * and the caller is a configured approver with an identity.
 * @example
 * const server = createPitMcpServer({ backend, caller: { approver: false, via: 'stdio' } });
 * await server.connect(new StdioServerTransport());
 */
export function createPitMcpServer(options: PitMcpServerOptions): McpServer {
  const server = new McpServer(
    { name: 'pit', version: options.version ?? '0.1.0' },
    {
      instructions:
        'The Pit supervises long-running AI agents in mission cells. Read-only tools tell who is dead, why, and what waits for approval; action tools (approvers only) answer approvals and restart or stop agents.',
    },
  );
  registerReadTools(server, options.backend);
  registerResources(server, options.backend);
  const { caller } = options;
  if (options.actions && caller.approver && caller.identity !== undefined)
    registerActionTools(server, {
      backend: options.backend,
      caller: { ...caller, identity: caller.identity },
      ...(options.logger ? { logger: options.logger } : {}),
    });
  return server;
}
