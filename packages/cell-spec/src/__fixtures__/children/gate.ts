// Children print "ready" once their modules are loaded, then wait for "go [argument]" on stdin, so
// that a test can start them ahead of time (or all at once) and release them at a chosen moment.
import { createInterface } from 'node:readline';

/** Resolves with the argument of the "go" line ('' when there is none). */
export async function waitForGo(): Promise<string> {
  process.stdout.write('ready\n');
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [word, ...rest] = line.trim().split(' ');
    if (word === 'go') {
      lines.close();
      return rest.join(' ');
    }
  }
  throw new Error('stdin closed before "go"');
}
