/** A free TCP port on 127.0.0.1, for a server that must be told its port before it starts. */
import { createServer } from 'node:net';

/**
 * Asks the kernel for a free port on 127.0.0.1 (listens on port 0, reads the port, closes).
 * Prefer listening on port 0 directly where the server allows it: another process may take
 * the port between this call and its use.
 *
 * @throws Error when 127.0.0.1 cannot be listened on.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
