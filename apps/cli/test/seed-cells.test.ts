import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pit } from './cli.js';

/** cell.json exactly as seed 001's `_make_cell` writes it. */
const SEED_CELL = fileURLToPath(new URL('./fixtures/seed-001-cell.json', import.meta.url));
const SEED_UUID = 'a3f7c901-1234-4b5e-8def-000000000001';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'pit-cli-seed-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('pit cells list with a seed-format cell', () => {
  it('lists the cell, and --verbose names each field the Pit defaulted and its value', async () => {
    mkdirSync(join(root, SEED_UUID));
    writeFileSync(join(root, SEED_UUID, 'cell.json'), readFileSync(SEED_CELL));
    const created = await pit([
      '--cells-root',
      root,
      'cell',
      'create',
      '--mission',
      'a Pit cell',
      '--agent',
      'forge',
    ]);
    expect(created.code).toBe(0);
    const uuid = /created cell ([0-9a-f-]{36})/.exec(created.stdout)![1]!;

    const plain = await pit(['--cells-root', root, 'cells', 'list']);
    expect(plain.stderr).toBe('');
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain(`${SEED_UUID}`);
    expect(plain.stdout).toContain('claude:unspecified');
    expect(plain.stdout).not.toContain('defaulted');

    const verbose = await pit(['--cells-root', root, 'cells', 'list', '--verbose']);
    expect(verbose.code).toBe(0);
    expect(verbose.stdout).toMatch(
      new RegExp(
        `${SEED_UUID}: defaulted \\(seed-format cell.json\\): created_at="[0-9TZ:.-]+", created_by="unknown", agents.0.role="unspecified", agents.0.joined_at="[0-9TZ:.-]+"`,
      ),
    );
    expect(verbose.stdout).toContain(`${uuid}: nothing defaulted`);

    const json = JSON.parse(
      (await pit(['--cells-root', root, 'cells', 'list', '--json', '--verbose'])).stdout,
    ) as { cells: Array<{ uuid: string; defaulted: string[] }> };
    expect(json.cells.find((cell) => cell.uuid === SEED_UUID)?.defaulted).toEqual([
      'created_at',
      'created_by',
      'agents.0.role',
      'agents.0.joined_at',
    ]);
    expect(json.cells.find((cell) => cell.uuid === uuid)?.defaulted).toEqual([]);
    // Listing never writes: the seed cell.json is as it was.
    expect(readFileSync(join(root, SEED_UUID, 'cell.json'), 'utf8')).toBe(
      readFileSync(SEED_CELL, 'utf8'),
    );
  });
});
