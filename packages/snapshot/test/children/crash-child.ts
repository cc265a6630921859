/**
 * Runs one snapshot-store or checkpoint operation when told "go" on stdin, so that the test
 * can SIGKILL it at a random moment. Prints "ready" once loaded and "done <ms>" when finished.
 */
import { createSnapshotStore, restoreCheckpoint } from '../../src/index.js';

interface Args {
  op: 'snapshot' | 'rollback' | 'restore';
  stateDir: string;
  requestLog: string;
  agent: string;
  paths: string[];
  cell: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;

async function run(): Promise<void> {
  if (args.op === 'snapshot')
    await createSnapshotStore({ stateDir: args.stateDir, keep: 1 }).snapshot(
      args.agent,
      args.paths,
    );
  else if (args.op === 'rollback')
    await createSnapshotStore({ stateDir: args.stateDir, requestLog: args.requestLog }).rollback(
      args.agent,
      { reason: 'crash test' },
    );
  else await restoreCheckpoint(args.cell, { restoredBy: 'crash-test' });
}

process.stdin.once('data', () => {
  const started = performance.now();
  run().then(
    () => {
      process.stdout.write(`done ${Math.round(performance.now() - started)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
});
process.stdout.write('ready\n');
