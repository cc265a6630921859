import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { provisionCell } from '@pit/cell-spec';
import { readAgentStates } from '@pit/daemon';
import { freePort, testAgentPath, waitFor } from '@pit/test-kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const cliDir = fileURLToPath(new URL('..', import.meta.url));
const TOKENS = {
  PIT_HTTP_TOKEN: 'operator-token-0123456789-abcdef-0123456789',
  PIT_ANN_TOKEN: 'anns-own-token-abcdef-0123456789-abcdef-01',
  PIT_FORGE_TOKEN: 'forge-bot-token-0123456789-abcdef-012345',
};
const READ_TOOLS = [
  'pit_approvals',
  'pit_bus_tail',
  'pit_dead_agents',
  'pit_logs',
  'pit_providers',
  'pit_status',
  'pit_why',
];
const ACTION_TOOLS = ['pit_approve', 'pit_deny', 'pit_restart', 'pit_stop'];

let base: string;
let config: string;
let port: number;
let cell: { uuid: string; dir: string };
let daemon: ChildProcess;
let daemonErr = '';
const clients: Client[] = [];

/** The daemon's record of forge (its state directory is `state/` beside `missions/`). */
const forge = async () =>
  (await readAgentStates(join(base, 'state'), cell.dir).catch(() => undefined))?.agents.forge;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'pit-cli-mcp-'));
  const provisioned = await provisionCell(join(base, 'missions'), {
    mission: 'mcp',
    created_by: 'test',
    agents: [{ name: 'forge', role: 'lead' }],
  });
  cell = { uuid: provisioned.manifest.uuid, dir: provisioned.dir };
  port = await freePort();
  config = join(base, 'pit.toml');
  writeFileSync(
    config,
    [
      '[daemon]',
      'state_dir = "state"',
      'stop_agents_on_exit = true',
      '[daemon.http]',
      `listen = "127.0.0.1:${port}"`,
      '[daemon.http.approvers.ann]',
      'token_env = "PIT_ANN_TOKEN"',
      '[daemon.http.approvers.forge-bot]',
      'token_env = "PIT_FORGE_TOKEN"',
      'agent = "forge"',
      '[mcp]',
      'actions = true',
      '[cells]',
      'root = "missions"',
      'heartbeat_stale_s = 60',
      'poll_interval_s = 0.2',
      '[checkpoints]',
      'interval_s = 0',
      '[bus]',
      'enabled = false',
      '[policy.defaults]',
      'mode = "ask"',
      'approval = { channels = ["http"], timeout = "30m", on_timeout = "record_only" }',
      'rollback_before_restart = false',
      '[agents.forge]',
      `argv = ["${process.execPath}", "${testAgentPath}"]`,
      'startup_grace_s = 10',
      'stop_grace_s = 2',
    ].join('\n'),
  );
  chmodSync(config, 0o600);
  daemon = spawn(
    process.execPath,
    ['--conditions=@pit/source', '--import', 'tsx', bin, '--config', config, 'daemon'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...TOKENS } },
  );
  daemon.stderr!.on('data', (chunk: Buffer) => (daemonErr += chunk.toString()));
  await waitFor(
    async () => ((await forge())?.health === 'healthy' ? true : undefined),
    30_000,
    'forge running under the daemon',
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n${daemonErr}`);
  });
}, 60_000);

afterAll(async () => {
  for (const client of clients.splice(0)) await client.close().catch(() => undefined);
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    const exited = new Promise((resolve) => daemon.once('exit', resolve));
    daemon.kill('SIGTERM');
    await exited;
  }
  rmSync(base, { recursive: true, force: true });
});

/** The SDK's real client over Streamable HTTP, with a bearer token. */
async function httpClient(token: string): Promise<Client> {
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  clients.push(client);
  return client;
}

/** The SDK's real client over stdio, spawning the real `pit mcp`. */
async function stdioClient(args: string[], env: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [
        '--conditions=@pit/source',
        '--import',
        'tsx',
        bin,
        '--config',
        config,
        'mcp',
        ...args,
      ],
      cwd: cliDir,
      env,
      stderr: 'pipe',
    }),
  );
  clients.push(client);
  return client;
}

const call = async (client: Client, name: string, args: Record<string, unknown> = {}) =>
  (await client.callTool({ name, arguments: args })) as CallToolResult;
const text = (result: CallToolResult) =>
  result.content.map((part) => (part.type === 'text' ? part.text : '')).join('\n');

/** A raw initialize request to /mcp with the given headers. */
function rawInitialize(headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const call = request(
      {
        host: '127.0.0.1',
        port,
        path: '/mcp',
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...headers,
        },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    call.on('error', reject);
    call.end(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'raw', version: '1' },
        },
      }),
    );
  });
}

/** Whether a pid names a live process. */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Kills forge's running process and waits until the daemon holds it dead with an approval pending. */
async function killForgeAndAwaitApproval(client: Client): Promise<string> {
  const pid = await waitFor(
    async () => {
      const record = await forge();
      return record?.health === 'healthy' && record.pid && alive(record.pid)
        ? record.pid
        : undefined;
    },
    30_000,
    'forge healthy with a live process',
  );
  process.kill(pid, 'SIGKILL');
  return waitFor(
    async () => {
      const approvals = (await call(client, 'pit_approvals')).structuredContent as {
        approvals: Array<{ id: string; agent: string }>;
      };
      return approvals.approvals.find((approval) => approval.agent === 'forge')?.id;
    },
    30_000,
    'an approval request for forge',
  );
}

describe('the daemon serves MCP at /mcp', () => {
  it('refuses a request without the token (401) and one from another Origin (403)', async () => {
    expect(await rawInitialize({})).toBe(401);
    expect(await rawInitialize({ authorization: 'Bearer not-a-token-of-this-daemon-000000' })).toBe(
      401,
    );
    const auth = { authorization: `Bearer ${TOKENS.PIT_ANN_TOKEN}` };
    expect(await rawInitialize({ ...auth, origin: 'http://evil.example' })).toBe(403);
    expect(await rawInitialize({ ...auth, origin: `http://127.0.0.1:${port}` })).toBe(200);
  });

  it('lists read-only tools with schemas, answers each, shows a death, and lets an approver approve', async () => {
    const ann = await httpClient(TOKENS.PIT_ANN_TOKEN);
    const { tools } = await ann.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual([...ACTION_TOOLS, ...READ_TOOLS].sort());
    for (const tool of tools) {
      expect(tool.inputSchema.type).toBe('object');
      expect(tool.outputSchema?.type).toBe('object');
      const readOnly = READ_TOOLS.includes(tool.name);
      expect(tool.annotations?.readOnlyHint).toBe(readOnly);
      expect(tool.annotations?.destructiveHint).toBe(!readOnly);
    }

    const status = (await call(ann, 'pit_status', { cell: cell.uuid })).structuredContent as {
      agents: Array<{ agent: string; health: string }>;
    };
    expect(status.agents.map((agent) => agent.agent)).toEqual(['forge']);
    expect((await call(ann, 'pit_dead_agents')).structuredContent).toMatchObject({ agents: [] });
    const logs = (await call(ann, 'pit_logs', { agent: 'forge', lines: 5 })).structuredContent as {
      stream: string;
      lines: string[];
      stderr: string[];
    };
    expect(logs.stream).toBe('both');
    expect(logs.lines.join('\n')).toContain('--- pit: starting forge');
    // Its stderr log (<agent>.err.log) starts each run with the same header.
    expect(logs.stderr.join('\n')).toContain('--- pit: starting forge');
    const errors = (await call(ann, 'pit_logs', { agent: 'forge', lines: 5, stream: 'stderr' }))
      .structuredContent as { stream: string; lines: string[]; stderr?: string[] };
    expect(errors).toMatchObject({ stream: 'stderr' });
    expect(errors.lines.join('\n')).toContain('--- pit: starting forge');
    expect(errors.stderr).toBeUndefined();
    expect(
      (await call(ann, 'pit_bus_tail', { cell: cell.uuid, limit: 10 })).structuredContent,
    ).toMatchObject({ cell: cell.uuid, events: [], next_from: 1, more: false });
    const badInput = await call(ann, 'pit_logs', { agent: 'forge', lines: 100_000 });
    expect(badInput.isError).toBe(true);

    const id = await killForgeAndAwaitApproval(ann);
    const dead = (await call(ann, 'pit_dead_agents')).structuredContent as {
      agents: Array<{ agent: string; cell: string; pending_approval?: string }>;
    };
    expect(dead.agents).toMatchObject([{ agent: 'forge', cell: cell.uuid, pending_approval: id }]);
    // The request is stored before its revive_requested event is written: wait for the story.
    await waitFor(
      async () => {
        const why = (await call(ann, 'pit_why', { agent: 'forge' })).structuredContent as {
          incidents: Array<{ outcome: string }>;
        };
        return why.incidents.at(-1)?.outcome === 'pending' ? true : undefined;
      },
      30_000,
      'pit_why telling the pending approval',
    );

    // The operator's token reads, but is no approver: no action tools.
    const operator = await httpClient(TOKENS.PIT_HTTP_TOKEN);
    expect((await operator.listTools()).tools.map((tool) => tool.name).sort()).toEqual(READ_TOOLS);
    const notApprover = await call(operator, 'pit_approve', { id });
    expect(notApprover.isError).toBe(true);
    expect(text(notApprover)).toMatch(/pit_approve not found/);

    // forge-bot is an approver bound to agent forge: it cannot approve or restart forge.
    const itself = await httpClient(TOKENS.PIT_FORGE_TOKEN);
    const selfApprove = await call(itself, 'pit_approve', { id });
    expect(selfApprove.isError).toBe(true);
    expect(text(selfApprove)).toMatch(/can never approve, deny, restart or stop itself/);
    expect((await call(itself, 'pit_restart', { agent: 'forge' })).isError).toBe(true);
    expect((await forge())?.health).toBe('dead');
    expect(daemonErr).toContain('mcp action refused: an agent cannot act on itself');

    const approved = await call(ann, 'pit_approve', { id, reason: 'checked over MCP' });
    expect(approved.isError).toBeFalsy();
    expect(approved.structuredContent).toMatchObject({ ok: true, by: 'ann' });
    await waitFor(
      async () => ((await forge())?.health === 'healthy' ? true : undefined),
      30_000,
      'forge revived after the approval',
    );
    const story = (await call(ann, 'pit_why', { agent: 'forge' })).structuredContent as {
      incidents: Array<{ events: Array<{ line: string }> }>;
    };
    expect(
      story.incidents
        .at(-1)!
        .events.map((event) => event.line)
        .join('\n'),
    ).toContain('approved by ann via http: checked over MCP');
  }, 90_000);

  it('serves the resources', async () => {
    const client = await httpClient(TOKENS.PIT_HTTP_TOKEN);
    const read = async (uri: string) => {
      const { contents } = await client.readResource({ uri });
      return JSON.parse((contents[0] as { text: string }).text) as Record<string, unknown>;
    };
    expect(await read('pit://cells')).toMatchObject({ cells: [{ uuid: cell.uuid }] });
    const events = (await read(`pit://cells/${cell.uuid}/events`)) as {
      events: Array<{ event: string }>;
    };
    expect(events.events.map((event) => event.event)).toContain('agent_dead');
    expect(await read(`pit://agents/${cell.uuid}/forge`)).toMatchObject({
      status: { agent: 'forge', cell: cell.uuid },
    });
    const { approvals } = (await call(client, 'pit_approvals', { all: true }))
      .structuredContent as { approvals: Array<{ id: string }> };
    expect(await read(`pit://approvals/${approvals[0]!.id}`)).toMatchObject({
      id: approvals[0]!.id,
      agent: 'forge',
    });
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((template) => template.uriTemplate).sort()).toEqual([
      'pit://agents/{cell}/{name}',
      'pit://approvals/{id}',
      'pit://cells/{uuid}/events',
    ]);
  });
});

describe('pit mcp (stdio)', () => {
  it('serves the read-only tools without an approver identity', async () => {
    const client = await stdioClient([]);
    expect((await client.listTools()).tools.map((tool) => tool.name).sort()).toEqual(READ_TOOLS);
    const status = (await call(client, 'pit_status')).structuredContent as {
      agents: Array<{ agent: string }>;
    };
    expect(status.agents.map((agent) => agent.agent)).toEqual(['forge']);
    expect((await call(client, 'pit_approve', { id: 'x' })).isError).toBe(true);
  }, 30_000);

  it('refuses the agent itself, and approves as an approver through the daemon', async () => {
    const asForge = await stdioClient(['--as', 'ann'], {
      PIT_ANN_TOKEN: TOKENS.PIT_ANN_TOKEN,
      LAZARUS_AGENT: 'forge',
      LAZARUS_CELL_UUID: cell.uuid,
    });
    const id = await killForgeAndAwaitApproval(asForge);
    const refused = await call(asForge, 'pit_approve', { id });
    expect(refused.isError).toBe(true);
    expect(text(refused)).toMatch(/you are agent forge/);
    expect(
      (await call(asForge, 'pit_stop', { agent: `${cell.uuid.slice(0, 8)}/forge` })).isError,
    ).toBe(true);

    const ann = await stdioClient(['--as', 'ann'], { PIT_ANN_TOKEN: TOKENS.PIT_ANN_TOKEN });
    const approved = await call(ann, 'pit_approve', { id });
    expect(approved.structuredContent).toMatchObject({ ok: true, by: 'ann' });
    await waitFor(
      async () => ((await forge())?.health === 'healthy' ? true : undefined),
      30_000,
      'forge revived after the approval over stdio',
    );
    const wrongToken = await stdioClient(['--as', 'ann'], {
      PIT_ANN_TOKEN: 'not-anns-token-0123456789-abcdef-0123456',
    });
    const restart = await call(wrongToken, 'pit_restart', { agent: 'forge' });
    expect(restart.isError).toBe(true);
    expect(text(restart)).toMatch(/refused the token/);
  }, 90_000);
});
