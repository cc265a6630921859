import { describe, expect, it } from 'vitest';
import { composeAgentEnv } from './agent-env.js';

describe('composeAgentEnv', () => {
  it('passes a few harmless daemon variables, the literal env, then env_from secrets; never the rest', () => {
    const daemonEnv = {
      PATH: '/usr/bin',
      HOME: '/root',
      PIT_HTTP_TOKEN: 'daemon-secret',
      ANTHROPIC_API_KEY: 'sk-agent',
      OTHER: 'x',
    };
    const { env, missing } = composeAgentEnv(
      {
        env: { NODE_ENV: 'production', PATH: '/opt/bin' },
        env_from: ['ANTHROPIC_API_KEY', 'NOT_SET'],
      },
      daemonEnv,
    );
    expect(env).toEqual({
      PATH: '/opt/bin',
      HOME: '/root',
      NODE_ENV: 'production',
      ANTHROPIC_API_KEY: 'sk-agent',
    });
    expect(missing).toEqual(['NOT_SET']);
  });
});
