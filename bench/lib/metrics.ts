/** Reads the daemon's Prometheus `/metrics` (what a scraper sees). */

/** Every sample of `/metrics`, keyed `name{labels}` as printed. */
export async function scrapeMetrics(
  baseUrl: string,
  timeoutMs = 10_000,
): Promise<Map<string, number>> {
  const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`GET ${baseUrl}/metrics: ${response.status}`);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** `pit_agents{state="…"}` as a record: how many supervised agents are in each health state. */
export async function agentsByHealth(baseUrl: string): Promise<Record<string, number>> {
  const samples = await scrapeMetrics(baseUrl);
  const counts: Record<string, number> = {};
  for (const [key, value] of samples) {
    const match = /^pit_agents\{state="([a-z]+)"\}$/.exec(key);
    if (match) counts[match[1]!] = value;
  }
  return counts;
}
