// `pnpm bench [FILTER...]`: runs every benchmark (packages/*/bench/*.bench.ts, apps/*/bench/*.bench.ts,
// bench/*.bench.ts), each in its own process, collects the BENCH_RESULT line each prints, writes
// bench/results/<scope>.<name>.json and renders all results into bench/results/README.md.
// BENCH_SMOKE=1 runs small sizes (CI); a smoke run writes to bench/results/smoke/ so it never
// overwrites the committed full results.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { basename, join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const smoke = process.env.BENCH_SMOKE === '1';
const filters = process.argv.slice(2);
const outDir = join(root, 'bench', 'results', ...(smoke ? ['smoke'] : []));
mkdirSync(outDir, { recursive: true });

function benchFiles() {
  const files = [];
  for (const group of ['packages', 'apps']) {
    const base = join(root, group);
    if (!existsSync(base)) continue;
    for (const name of readdirSync(base)) {
      const dir = join(base, name, 'bench');
      if (!existsSync(dir)) continue;
      for (const file of readdirSync(dir)
        .filter((f) => f.endsWith('.bench.ts'))
        .sort())
        files.push({ scope: name, cwd: join(base, name), file: join(dir, file) });
    }
  }
  const top = join(root, 'bench');
  for (const file of readdirSync(top)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort())
    files.push({ scope: 'pit', cwd: root, file: join(top, file) });
  return files.filter(
    ({ scope, file }) =>
      filters.length === 0 || filters.some((f) => `${scope}/${basename(file)}`.includes(f)),
  );
}

let failures = 0;
for (const { scope, cwd, file } of benchFiles()) {
  const name = basename(file, '.bench.ts');
  process.stderr.write(`\n▶ ${scope}/${name}${smoke ? ' (smoke)' : ''}\n`);
  const started = Date.now();
  const run = spawnSync(
    process.execPath,
    ['--expose-gc', '--conditions=@pit/source', '--import', 'tsx', file],
    {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: (smoke ? 5 : 30) * 60_000,
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const line = (run.stdout ?? '').split('\n').find((l) => l.startsWith('BENCH_RESULT '));
  if (run.status !== 0 || !line) {
    failures += 1;
    process.stderr.write(
      `✗ ${scope}/${name}: exit ${run.status ?? run.signal}${line ? '' : ', no BENCH_RESULT line'}\n`,
    );
    continue;
  }
  const result = JSON.parse(line.slice('BENCH_RESULT '.length));
  const record = {
    scope,
    name,
    file: relative(root, file),
    smoke,
    seconds: (Date.now() - started) / 1000,
    ranAt: new Date().toISOString(),
    ...result,
  };
  writeFileSync(join(outDir, `${scope}.${name}.json`), `${JSON.stringify(record, null, 2)}\n`);
  for (const row of result.rows ?? []) {
    const verdict = row.ok === undefined ? '' : row.ok ? ' ✓' : ' ✗ MISSED';
    process.stderr.write(
      `  ${row.metric}: ${row.value} ${row.unit}${row.target ? ` (target ${row.target})` : ''}${verdict}\n`,
    );
  }
}

// Render every stored result (not just this run's) into one table.
const records = readdirSync(outDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(outDir, f), 'utf8')));
const cpu = cpus();
const machine = `${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}`;
const lines = [
  `# Benchmark results${smoke ? ' (smoke sizes)' : ''}`,
  '',
  `Machine of the last run: ${machine}. Regenerate with \`pnpm bench\` (one benchmark: \`pnpm bench <scope>/<name>\`).`,
  '',
];
for (const record of records) {
  lines.push(
    `## ${record.scope} — ${record.title ?? record.name}`,
    '',
    `\`${record.file}\`, run ${record.ranAt}${record.smoke ? ' (smoke)' : ''}`,
    '',
  );
  lines.push('| metric | value | unit | target | met |', '| --- | ---: | --- | --- | --- |');
  for (const row of record.rows ?? []) {
    const value =
      typeof row.value === 'number'
        ? Number(row.value.toPrecision(4)).toString()
        : String(row.value);
    lines.push(
      `| ${row.metric} | ${value} | ${row.unit ?? ''} | ${row.target ?? ''} | ${row.ok === undefined ? '' : row.ok ? 'yes' : '**no**'} |`,
    );
  }
  if (record.notes) lines.push('', record.notes);
  lines.push('');
}
writeFileSync(join(outDir, 'README.md'), `${lines.join('\n')}\n`);
process.stderr.write(`\nresults: ${relative(root, join(outDir, 'README.md'))}\n`);
process.exitCode = failures ? 1 : 0;
