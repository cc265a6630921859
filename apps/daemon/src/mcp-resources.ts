/**
 * The MCP server's resources (JSON): `pit://cells` (the supervised cells),
 * `pit://cells/{uuid}/events` (a cell's last events), `pit://agents/{cell}/{name}` (one agent's
 * status and last incidents; `host` as the cell outside cells) and `pit://approvals/{id}` (one
 * approval request). Each template lists what exists. Read-only; an unknown name is an error
 * naming it.
 */
import { join } from 'node:path';
import { ResourceTemplate, type McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { ReadResourceResult } from '@modelcontextprotocol/sdk/types.js';
import { CellUuidSchema, cellPaths, readEventLog } from '@pit/cell-spec';
import { readAgentStory } from './agent-story.js';
import type { McpBackend } from './mcp-server.js';

/** The most events `pit://cells/{uuid}/events` returns (the newest). */
export const MCP_RESOURCE_EVENTS = 500;

const json = (uri: URL, value: unknown): ReadResourceResult => ({
  contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(value, null, 2) }],
});
const one = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/** Registers the resources on `server`. */
export function registerResources(server: McpServer, backend: McpBackend): void {
  server.registerResource(
    'cells',
    'pit://cells',
    { title: 'Cells', description: 'The supervised mission cells', mimeType: 'application/json' },
    async (uri) => json(uri, { cells: (await backend.status()).cells }),
  );
  server.registerResource(
    'cell-events',
    new ResourceTemplate('pit://cells/{uuid}/events', {
      list: async () => ({
        resources: (await backend.status()).cells.map((cell) => ({
          uri: `pit://cells/${cell.uuid}/events`,
          name: `events of ${cell.name ?? cell.mission} (${cell.uuid.slice(0, 8)})`,
          mimeType: 'application/json',
        })),
      }),
    }),
    {
      title: 'Cell events',
      description: `A cell's event log (the newest ${MCP_RESOURCE_EVENTS} events)`,
      mimeType: 'application/json',
    },
    async (uri, variables) => {
      const uuid = CellUuidSchema.parse(one(variables.uuid));
      const events: unknown[] = [];
      const problems: string[] = [];
      for await (const entry of readEventLog(cellPaths(join(backend.cellsRoot, uuid)).events)) {
        if (!entry.ok) problems.push(`${entry.path}:${entry.line}: ${entry.reason}`);
        else events.push(entry.event);
        if (events.length > MCP_RESOURCE_EVENTS) events.shift();
      }
      return json(uri, { cell: uuid, events, problems: problems.slice(0, 50) });
    },
  );
  registerAgentResource(server, backend);
  server.registerResource(
    'approval',
    new ResourceTemplate('pit://approvals/{id}', {
      list: async () => ({
        resources: (await backend.approvals())
          .filter((approval) => approval.status === 'pending')
          .map((approval) => ({
            uri: `pit://approvals/${approval.id}`,
            name: `approval ${approval.id} (${approval.agent})`,
            mimeType: 'application/json',
          })),
      }),
    }),
    { title: 'Approval request', mimeType: 'application/json' },
    async (uri, variables) => {
      const id = one(variables.id);
      const approval = (await backend.approvals()).find((entry) => entry.id === id);
      if (!approval) throw new Error(`pit://approvals/${id}: no such approval request`);
      return json(uri, approval);
    },
  );
}

function registerAgentResource(server: McpServer, backend: McpBackend): void {
  server.registerResource(
    'agent',
    new ResourceTemplate('pit://agents/{cell}/{name}', {
      list: async () => ({
        resources: (await backend.status()).agents.map((agent) => ({
          uri: `pit://agents/${agent.cell ?? 'host'}/${agent.agent}`,
          name: `${agent.agent} (${agent.health})`,
          mimeType: 'application/json',
        })),
      }),
    }),
    {
      title: 'Agent',
      description:
        "An agent's status and its last incidents (cell `host` for agents outside cells)",
      mimeType: 'application/json',
    },
    async (uri, variables) => {
      const cell = one(variables.cell);
      const name = one(variables.name);
      const agent = (await backend.status()).agents.find(
        (entry) => entry.agent === name && (entry.cell ?? 'host') === cell,
      );
      if (!agent) throw new Error(`pit://agents/${cell}/${name}: no such supervised agent`);
      const story = await readAgentStory({
        cellsRoot: backend.cellsRoot,
        agent: agent.agent,
        extraLogs: [join(backend.stateDir, 'logs', 'events.jsonl')],
      });
      const incidents = story.incidents.filter(
        (incident) => (incident.cell ?? 'host') === (agent.cell ?? 'host'),
      );
      return json(uri, { status: agent, incidents: incidents.slice(-3) });
    },
  );
}
