// Appends <count> events to one events.jsonl, alternating appendEvent and a kept-open appender.
// argv: <eventsPath> <writerId> <count>
import { appendEvent, createEventAppender } from '@pit/cell-spec';
import { waitForGo } from './gate.js';

const [eventsPath, writer, countText] = process.argv.slice(2);
if (!eventsPath || !writer || !countText)
  throw new Error('usage: event-appender <eventsPath> <writerId> <count>');
const count = Number(countText);
await waitForGo();
const appender = createEventAppender(eventsPath);
for (let seq = 0; seq < count; seq += 1) {
  // Lines from a few bytes to ~12 KiB, so that interleaving within a line would be visible.
  const event = {
    event: 'heartbeat',
    agent: writer,
    cycle: seq,
    status: writer.repeat(1 + ((seq * 7919) % 6000)),
  } as const;
  if (seq % 2 === 0) await appendEvent(eventsPath, event);
  else await appender.append(event);
}
await appender.close();
process.stdout.write('done\n');
