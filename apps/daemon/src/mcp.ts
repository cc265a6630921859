/**
 * `@pit/daemon/mcp`: the MCP server (mcp-server.ts) and the daemon's `/mcp` endpoint
 * (mcp-http.ts), kept out of the main entry so that nothing loads the MCP SDK (~17 MB of resident
 * memory at load) until MCP is used: the daemon imports mcp-http.ts on the first `/mcp`
 * request, the CLI this entry only for `pit mcp`.
 */
export {
  createPitMcpServer,
  type McpBackend,
  type McpCaller,
  type McpActionResult,
  type PitMcpServerOptions,
} from './mcp-server.js';
export { createMcpHttpHandler, daemonMcpBackend, httpCaller } from './mcp-http.js';
