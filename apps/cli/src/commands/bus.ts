import { join } from 'node:path';
import { readManifest } from '@pit/cell-spec';
import { readBusLog, type BusEvent } from '@pit/mission-bus';
import { resolveCellUuid } from '../cell-ref.js';
import { UsageError } from '../errors.js';
import { EXIT } from '../exit-codes.js';
import type { CommandContext } from '../context.js';

/** One bus event as a line a person reads. */
export function describeBusEvent(event: BusEvent): string {
  const head = `#${event.seq} ${event.ts} ${event.sender}`;
  switch (event.event) {
    case 'message':
      return `${head} message [${event.topic}]${event.to ? ` → ${event.to}` : ''}: ${JSON.stringify(event.payload)}`;
    case 'checkpoint':
      return `${head} checkpoint ${event.id}: ${event.summary}`;
    case 'handoff':
      return `${head} handoff ${event.from} → ${event.to} at checkpoint ${event.checkpoint}${event.note ? `: ${event.note}` : ''}`;
    default:
      return `${head} ${event.event} ${JSON.stringify(event)}`;
  }
}

/**
 * `pit bus tail CELL [--from SEQ] [--follow] [--json]` (CELL: a uuid or a unique prefix of one):
 * a mission's bus stream, read from the
 * cell's log (no lock taken: it works while the daemon serves the bus). `--follow` keeps
 * printing new events until interrupted.
 */
export async function busTail(
  context: CommandContext,
  ref: string,
  options: { from?: string; follow?: boolean; json?: boolean; signal?: AbortSignal },
): Promise<number> {
  const root = await context.cellsRoot();
  const uuid = await resolveCellUuid(root, ref, 'CELL');
  const dir = join(root, uuid);
  await readManifest(dir); // a clear error for a path that is not a cell
  let after = 0;
  if (options.from !== undefined) {
    const from = Number(options.from);
    if (!Number.isInteger(from) || from < 1)
      throw new UsageError(
        `--from ${JSON.stringify(options.from)}: expected a sequence number ≥ 1`,
      );
    after = from - 1;
  }
  const signal = options.signal ?? interrupted();
  let printedAny = false;
  for (;;) {
    for await (const entry of readBusLog(dir, { after })) {
      if (!entry.ok) {
        if (!entry.torn)
          context.output.err(`warning: ${entry.segment}:${entry.line}: ${entry.reason}`);
        continue;
      }
      context.output.out(
        options.json ? JSON.stringify(entry.event) : describeBusEvent(entry.event),
      );
      after = entry.event.seq;
      printedAny = true;
    }
    if (!options.follow || signal.aborted) break;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 250);
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    if (signal.aborted) break;
  }
  if (!printedAny && !options.follow && !options.json)
    context.output.err(`cell ${uuid}: no bus events${after ? ` after #${after}` : ''}`);
  return EXIT.ok;
}

/** Aborts on SIGINT/SIGTERM so `--follow` ends cleanly. */
function interrupted(): AbortSignal {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return controller.signal;
}
