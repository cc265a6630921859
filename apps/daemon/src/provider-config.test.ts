import { describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';

const good = `
[providers.anthropic]
status_url = "https://status.example.com/api/v2/status.json"

[providers.openai]
exec = ["/usr/local/bin/check-openai"]
passive = false

[agents.scout]
argv = ["node", "scout.js"]
provider = "anthropic"
fallback_providers = ["openai"]
provider_switch_back_s = 60

[[agents.scout.provider_files]]
path = "agent.json"
[agents.scout.provider_files.contents]
anthropic = '{"provider":"anthropic"}'
openai = '{"provider":"openai"}'
`;

describe('[providers] and an agent’s provider keys', () => {
  it('parses a provider with its defaults and an agent with a fallback', () => {
    const result = parseConfig(good, 'toml');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.providers.anthropic).toMatchObject({
      passive: true,
      passive_window_s: 120,
      passive_dead_agents: 2,
      interval_s: 30,
      timeout_s: 5,
      wait_initial_s: 5,
      wait_cap_s: 300,
    });
    expect(result.config.agents.scout).toMatchObject({
      provider: 'anthropic',
      fallback_providers: ['openai'],
      provider_switch_back_s: 60,
      provider_files: [{ path: 'agent.json', contents: { openai: '{"provider":"openai"}' } }],
    });
  });

  it('reports every provider problem at once, with key path and line', () => {
    const result = parseConfig(
      [
        '[providers.anthropic]', //                     1
        'status_url = "ftp://status"', //               2
        'intervl_s = 5', //                             3
        '[providers.silent]', //                        4
        'passive = false', //                           5
        '[agents.scout]', //                            6
        'argv = ["x"]', //                              7
        'provider = "anthropik"', //                    8
        'fallback_providers = ["openai", "silent"]', // 9
        '[[agents.scout.provider_files]]', //           10
        'path = "agent.json"', //                       11
        'contents = { silent = "{}" }', //              12
        '[agents.solo]', //                             13
        'argv = ["x"]', //                              14
        'fallback_providers = ["silent"]', //           15
      ].join('\n'),
      'toml',
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const find = (key: string) => result.problems.filter((problem) => problem.path === key);
    expect(find('providers.anthropic.status_url')).toEqual([
      expect.objectContaining({ line: 2, message: 'must be an http(s) URL' }),
    ]);
    expect(find('providers.anthropic.intervl_s')).toEqual([
      expect.objectContaining({ line: 3, message: 'unknown key' }),
    ]);
    expect(find('providers.silent')).toEqual([
      expect.objectContaining({
        line: 4,
        message: 'has no health source: set status_url, exec, or passive = true',
      }),
    ]);
    expect(find('agents.scout.provider')).toEqual([
      expect.objectContaining({ line: 8, message: 'no [providers.anthropik] is configured' }),
    ]);
    expect(find('agents.scout.fallback_providers.0')).toEqual([
      expect.objectContaining({ line: 9, message: 'no [providers.openai] is configured' }),
    ]);
    expect(find('agents.scout.provider_files.0.contents').map((p) => p.message)).toEqual([
      'has no content for provider anthropik',
      'has no content for provider openai',
    ]);
    expect(find('agents.solo.provider')).toEqual([
      expect.objectContaining({ message: 'required with fallback_providers or provider_files' }),
    ]);
    expect(find('agents.solo.provider_files')).toEqual([
      expect.objectContaining({
        message: expect.stringContaining('required with fallback_providers'),
      }),
    ]);
  });

  it('refuses the primary as its own fallback', () => {
    const result = parseConfig(
      '[providers.a]\n[agents.x]\nargv = ["x"]\nprovider = "a"\nfallback_providers = ["a"]\n[[agents.x.provider_files]]\npath = "f"\ncontents = { a = "" }\n',
      'toml',
    );
    expect(!result.ok && result.problems).toEqual([
      expect.objectContaining({
        path: 'agents.x.fallback_providers.0',
        message: 'the primary provider cannot also be a fallback',
      }),
    ]);
  });

  it("refuses passive_dead_agents below 2: one agent's reports alone never make a provider dead", () => {
    const result = parseConfig('[providers.a]\npassive_dead_agents = 1\n', 'toml');
    expect(!result.ok && result.problems).toEqual([
      expect.objectContaining({
        path: 'providers.a.passive_dead_agents',
        line: 2,
        message: expect.stringMatching(/^must be at least 2: one agent's reports alone/),
      }),
    ]);
  });
});
