// Runs the fault-injection suite (test/faults) once with the environment it is given and writes
// test/faults/results/README.md: one row per test (file, name, status, duration), the seeds and
// sizes used, the soak's summary (test/faults/results/soak.json, written when FAULTS_RECORD=1),
// and the machine. Exits with vitest's exit code, after writing the table either way.
//
//   pnpm faults:report                                                     # CI sizes
//   FAULTS_SOAK_S=600 FAULTS_ITERATIONS=100 FAULTS_RECORD=1 pnpm faults:report   # the full soak
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const suite = join(root, 'test', 'faults');
const resultsDir = join(suite, 'results');
const tmp = mkdtempSync(join(tmpdir(), 'pit-faults-report-'));
const outputFile = join(tmp, 'vitest.json');

const startedAt = new Date();
const loadBefore = loadavg();
const args = [
  'exec',
  'vitest',
  'run',
  '--config',
  'test/faults/vitest.config.ts',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${outputFile}`,
  // Extra arguments (file filters, -t) go to vitest: `pnpm faults:report crash-loop`.
  ...process.argv.slice(2),
];
process.stderr.write(`faults-report: pnpm ${args.join(' ')}\n`);
const child = spawn('pnpm', args, {
  cwd: root,
  env: process.env,
  stdio: ['ignore', 'pipe', 'inherit'],
});
const code = await new Promise((resolve) =>
  child.on('close', (exitCode) => resolve(exitCode ?? 1)),
);
const finishedAt = new Date();
const loadAfter = loadavg();

if (!existsSync(outputFile)) {
  process.stderr.write(
    `faults-report: vitest wrote no ${outputFile} (exit ${code}); README not updated\n`,
  );
  rmSync(tmp, { recursive: true, force: true });
  process.exit(code || 1);
}
const report = JSON.parse(readFileSync(outputFile, 'utf8'));
rmSync(tmp, { recursive: true, force: true });

// ---- the machine -----------------------------------------------------------------------
const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown CPU';
const cpuCount = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
const memKb = Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]);
const memory = Number.isFinite(memKb)
  ? `${(memKb / 2 ** 20).toFixed(1)} GiB`
  : `${(totalmem() / 2 ** 30).toFixed(1)} GiB`;
const load = (values) => values.map((value) => value.toFixed(2)).join(' / ');

// ---- the tests -------------------------------------------------------------------------
const escape = (text) => String(text).replaceAll('|', '\\|').replaceAll('\n', ' ');
const seconds = (ms) => (typeof ms === 'number' ? `${(ms / 1000).toFixed(1)} s` : '');
const rows = [];
const failures = [];
for (const file of [...report.testResults].sort((a, b) => a.name.localeCompare(b.name))) {
  const path = relative(suite, file.name);
  if (file.assertionResults.length === 0)
    rows.push(
      `| \`${path}\` | (file) | ${file.status} | | ${escape(file.message ?? '').slice(0, 300)} |`,
    );
  for (const test of file.assertionResults) {
    const name = [...test.ancestorTitles, test.title].join(' › ');
    rows.push(`| \`${path}\` | ${escape(name)} | ${test.status} | ${seconds(test.duration)} |`);
    if (test.status === 'failed')
      failures.push(
        `- \`${path}\` › ${escape(name)}: ${escape((test.failureMessages ?? []).join(' ')).slice(0, 600)}`,
      );
  }
}
const names = report.testResults.flatMap((file) =>
  file.assertionResults.map((test) => [...test.ancestorTitles, test.title].join(' ')),
);
const seeds = [
  ...new Set(names.flatMap((name) => [...name.matchAll(/seed (\d+)/g)].map((match) => match[1]))),
];
const iterations = process.env.FAULTS_ITERATIONS ?? '25 (default)';
const soakS = process.env.FAULTS_SOAK_S ?? '60 (default)';

// ---- the soak's summary (only a summary written during this run counts as this run's) ----
const soakPath = join(resultsDir, 'soak.json');
let soakLines = ['No soak summary: run with `FAULTS_RECORD=1` to write `soak.json`.'];
if (existsSync(soakPath)) {
  const soak = JSON.parse(readFileSync(soakPath, 'utf8'));
  const fresh = Date.parse(soak.date) >= startedAt.getTime();
  soakLines = [
    fresh
      ? 'From `soak.json`, written by this run:'
      : `From \`soak.json\` of an **earlier run** (${soak.date}; this run did not record one):`,
    '',
    '| | |',
    '| --- | --- |',
    `| size | ${soak.agents} agents in ${soak.cells} cells, killed at ${soak.kill_rate_per_s}/s for ${soak.soak_s} s (seed ${soak.seed}) |`,
    `| kills / agents hit | ${soak.kills} / ${soak.agents_killed} |`,
    `| \`agent_dead\` / \`agent_revived\` | ${soak.agent_dead} / ${soak.agent_revived} |`,
    `| deaths by reason | ${escape(
      Object.entries(soak.deaths_by_reason ?? {})
        .map(([reason, count]) => `${count} × ${reason}`)
        .join('; '),
    )} |`,
    `| deaths the driver did not cause | ${escape(JSON.stringify(soak.unprovoked_deaths ?? {}))} |`,
    `| an agent twice at a sample | ${soak.twice} |`,
    `| fleet up / final settle | ${seconds(soak.setup_ms)} / ${seconds(soak.settle_ms)} |`,
    `| daemon RSS (MB) | first ${soak.rss_mb.first}, median Q2 ${soak.rss_mb.second_quarter_median}, median Q4 ${soak.rss_mb.last_quarter_median}, max ${soak.rss_mb.max}, settled ${soak.rss_mb.settled}${soak.rss_mb.by_tenth ? `; median by tenth of the run: ${soak.rss_mb.by_tenth.join(', ')}` : ''} |`,
    `| daemon fds | first ${soak.fds.first}, max Q2 ${soak.fds.second_quarter_max}${soak.fds.second_quarter_median === undefined ? '' : `, median Q2 ${soak.fds.second_quarter_median}, median Q4 ${soak.fds.last_quarter_median}`}, max Q4 ${soak.fds.last_quarter_max}, settled ${soak.fds.settled} |`,
    `| samples | ${soak.samples} (one per scan of \`/proc\`, at most one a second: every ${(soak.soak_s / soak.samples).toFixed(1)} s on average) |`,
  ];
}

const lines = [
  '# Fault-injection results',
  '',
  `Generated by \`pnpm faults:report\` (\`scripts/faults-report.mjs\`) on ${finishedAt.toISOString()}: ` +
    `${report.numPassedTests} passed, ${report.numFailedTests} failed, ${report.numPendingTests + (report.numTodoTests ?? 0)} skipped, ` +
    `of ${report.numTotalTests} tests; wall time ${seconds(finishedAt.getTime() - startedAt.getTime())}; vitest exit code ${code}.`,
  '',
  `- Environment: \`FAULTS_SEED=${process.env.FAULTS_SEED ?? '(unset: random per file)'}\`, \`FAULTS_ITERATIONS=${iterations}\`, ` +
    `\`FAULTS_SOAK_S=${soakS}\`, \`FAULTS_RECORD=${process.env.FAULTS_RECORD ?? '(unset)'}\`${process.env.FAULTS_RACE ? `, \`FAULTS_RACE=${process.env.FAULTS_RACE}\`` : ''}`,
  `- Seeds used: ${seeds.length ? seeds.join(', ') : 'none named'} (reproduce with \`FAULTS_SEED=<seed>\`)`,
  `- Machine: ${cpuCount} × ${cpuModel}, ${memory}, Node ${process.version}, ${process.platform}; ` +
    `load average (1/5/15 min) ${load(loadBefore)} at the start, ${load(loadAfter)} at the end. ` +
    'The machine is shared with other work: durations are noisy.',
  '',
  '| file | test | status | duration |',
  '| --- | --- | --- | ---: |',
  ...rows,
  '',
  ...(failures.length ? ['## Failures', '', ...failures, ''] : []),
  '## Soak',
  '',
  ...soakLines,
  '',
  'Regenerate: `pnpm faults:report` (CI sizes), or the full soak by hand: ' +
    '`FAULTS_SOAK_S=600 FAULTS_ITERATIONS=100 FAULTS_RECORD=1 pnpm faults:report` (about 15 minutes).',
  '',
];
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, 'README.md'), lines.join('\n'));
process.stderr.write(
  `faults-report: wrote ${relative(root, join(resultsDir, 'README.md'))} (vitest exit ${code})\n`,
);
process.exit(code);
