import { describe, expect, it } from 'vitest';
import { parse } from 'smol-toml';
import { locateTomlKeys, positionOf } from './toml-locations.js';

const TEXT = `# comment
[daemon]
state_dir = "/var/lib/pit" # trailing [not a table]

[agents.forge]
argv = [
  "node",   # c
  "agent.js",
]
env = { A = "1", "B" = { c = 2 } }
probes.health_url = "http://x"
description = """
multi [x] = y
"""
[[agents.forge.config_files]]
path = "a"
[[agents.forge.config_files]]
path = 'b'
canonical = { repo = "r", ref = 'main', path = "p" }
`;

describe('locateTomlKeys', () => {
  it('maps tables, keys, dotted keys, inline tables, array items and arrays of tables to line and column', () => {
    expect(() => parse(TEXT)).not.toThrow();
    const found = locateTomlKeys(TEXT);
    expect(found.get('daemon')).toEqual({ line: 2, column: 2 });
    expect(found.get('daemon.state_dir')).toEqual({ line: 3, column: 1 });
    expect(found.get('agents.forge.argv')).toEqual({ line: 6, column: 1 });
    expect(found.get('agents.forge.argv.1')).toEqual({ line: 8, column: 3 });
    expect(found.get('agents.forge.env.B.c')).toEqual({ line: 10, column: 26 });
    expect(found.get('agents.forge.probes.health_url')).toEqual({ line: 11, column: 8 });
    expect(found.get('agents.forge.config_files.1.path')).toEqual({ line: 18, column: 1 });
    expect(found.get('agents.forge.config_files.1.canonical.ref')).toEqual({
      line: 19,
      column: 27,
    });
    // Text inside a multi-line string is not a key.
    expect([...found.keys()].some((key) => key.includes('multi'))).toBe(false);
  });

  it('points an error deep inside a value at the nearest written key', () => {
    const found = locateTomlKeys(TEXT);
    expect(positionOf(found, ['agents', 'forge', 'env', 'B', 'c', 'deeper'])).toEqual({
      line: 10,
      column: 26,
    });
    expect(positionOf(found, ['nowhere'])).toBeUndefined();
  });
});
