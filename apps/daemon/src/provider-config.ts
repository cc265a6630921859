/**
 * The config of provider-aware revival: `[providers.<name>]` (where a model provider's health
 * comes from: a status endpoint, an exec probe, the agents' own heartbeats) and the keys an
 * agent declares (`provider`, `fallback_providers`, `provider_files`, `provider_switch_back_s`),
 * with the checks between them that `pit config check` reports. Schemas and checks only; the
 * tracker (provider-health.ts) and the switch (provider-switch.ts) read what is parsed here.
 */
import { z } from 'zod';
import { AgentNameSchema } from '@pit/cell-spec';

/** A provider's name: an identifier like an agent's (`anthropic`, `openai`, `local-llm`). */
export const ProviderNameSchema = AgentNameSchema;

const positiveSeconds = (fallback: number) =>
  z.number().positive({ message: 'must be a positive number of seconds' }).default(fallback);

/** `[providers.<name>]`: where the health of one model provider comes from. */
export const ProviderConfigSchema = z.strictObject({
  /**
   * An HTTP(S) URL answering JSON: a Statuspage `status.indicator` (`none` → healthy, `minor` →
   * degraded, `major`/`critical` → dead) or a top-level `status` (`healthy`/`ok`/`up`,
   * `degraded`, `dead`/`down`/`outage`). Unreachable or unreadable: the source says nothing.
   */
  status_url: z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }).optional(),
  /** A command run without a shell: exit 0 → healthy, any other exit → dead; a timeout says nothing. */
  exec: z.array(z.string().min(1)).min(1).optional(),
  /** Count the provider errors agents report in their heartbeats (evidence only). @default true */
  passive: z.boolean().default(true),
  /** Reports older than this are forgotten. @default 120 (s) */
  passive_window_s: positiveSeconds(120),
  /**
   * Distinct agents reporting outage errors within the window that make the provider dead by
   * passive evidence alone (fewer make it degraded). At least 2: agents are untrusted, and one
   * agent's reports alone must not hold every peer on the provider waiting. @default 2
   */
  passive_dead_agents: z
    .number()
    .int()
    .min(2, {
      message:
        "must be at least 2: one agent's reports alone never make a provider dead (agents are untrusted)",
    })
    .max(1000)
    .default(2),
  /** How often the status URL and exec probe are asked. @default 30 (s) */
  interval_s: positiveSeconds(30),
  /** Timeout of one status request or exec probe. @default 5 (s) */
  timeout_s: positiveSeconds(5),
  /** The first wait of an agent whose provider is down (doubles each time). @default 5 (s) */
  wait_initial_s: positiveSeconds(5),
  /** The longest wait. @default 300 (s) */
  wait_cap_s: positiveSeconds(300),
});
/** One `[providers.<name>]` table, parsed. */
export type ProviderConfig = z.infer<typeof ProviderConfigSchema>;

/** One file that selects the agent's provider, with its whole content per provider. */
export const ProviderFileSchema = z.strictObject({
  /** Relative to the cell directory (or to `cwd` outside cells), or absolute (like `config_files`). */
  path: z.string().min(1),
  /** The file's content for each provider, keyed by provider name. */
  contents: z.record(ProviderNameSchema, z.string().max(1024 * 1024)),
});

/** The keys of `[agents.<name>]` about providers (spread into its schema). */
export const AgentProviderFields = {
  /** The model provider the agent runs on (a `[providers.<name>]`). */
  provider: ProviderNameSchema.optional(),
  /** Providers to switch to, in order, while the primary is dead. @default [] */
  fallback_providers: z.array(ProviderNameSchema).default([]),
  /** The files a switch writes (their whole content for the provider switched to). @default [] */
  provider_files: z.array(ProviderFileSchema).default([]),
  /** Switch a live agent on a fallback back once its primary has been healthy this long; omitted: only when it dies. */
  provider_switch_back_s: z.number().nonnegative().optional(),
};

type Problem = { path: Array<string | number>; message: string };
const isTable = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Checks between keys: a provider has at least one source; an agent's provider and fallbacks
 * are configured providers, distinct; its provider files have a content for each of them.
 */
export function crossCheckProviders(raw: unknown): Problem[] {
  const problems: Problem[] = [];
  const providers = isTable(raw) && isTable(raw.providers) ? raw.providers : {};
  for (const [name, provider] of Object.entries(providers))
    if (
      isTable(provider) &&
      provider.status_url === undefined &&
      provider.exec === undefined &&
      provider.passive === false
    )
      problems.push({
        path: ['providers', name],
        message: 'has no health source: set status_url, exec, or passive = true',
      });
  const agents = isTable(raw) && isTable(raw.agents) ? raw.agents : {};
  for (const [name, agent] of Object.entries(agents))
    if (isTable(agent)) problems.push(...checkAgentProviders(name, agent, providers));
  return problems;
}

function checkAgentProviders(
  name: string,
  agent: Record<string, unknown>,
  providers: Record<string, unknown>,
): Problem[] {
  const problems: Problem[] = [];
  const known = (provider: unknown, path: Array<string | number>) => {
    if (typeof provider === 'string' && !(provider in providers))
      problems.push({ path, message: `no [providers.${provider}] is configured` });
  };
  known(agent.provider, ['agents', name, 'provider']);
  const fallbacks = Array.isArray(agent.fallback_providers) ? agent.fallback_providers : [];
  fallbacks.forEach((fallback, index) => {
    const path = ['agents', name, 'fallback_providers', index];
    known(fallback, path);
    if (fallback === agent.provider)
      problems.push({ path, message: 'the primary provider cannot also be a fallback' });
    else if (fallbacks.indexOf(fallback) !== index)
      problems.push({ path, message: `${String(fallback)} is listed twice` });
  });
  if (agent.provider === undefined && (fallbacks.length > 0 || agent.provider_files !== undefined))
    problems.push({
      path: ['agents', name, 'provider'],
      message: 'required with fallback_providers or provider_files',
    });
  const files = Array.isArray(agent.provider_files) ? agent.provider_files : [];
  if (fallbacks.length > 0 && files.length === 0)
    problems.push({
      path: ['agents', name, 'provider_files'],
      message: 'required with fallback_providers: the files a switch to a fallback writes',
    });
  const needed = [agent.provider, ...fallbacks].filter((p): p is string => typeof p === 'string');
  files.forEach((file, index) => {
    const contents = isTable(file) && isTable(file.contents) ? file.contents : undefined;
    if (contents === undefined) return;
    for (const provider of needed)
      if (!(provider in contents))
        problems.push({
          path: ['agents', name, 'provider_files', index, 'contents'],
          message: `has no content for provider ${provider}`,
        });
    for (const provider of Object.keys(contents))
      known(provider, ['agents', name, 'provider_files', index, 'contents', provider]);
  });
  return problems;
}
