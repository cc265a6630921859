/**
 * Hosts benchmark targets in their own process (as gateways are): `live` HTTP servers that
 * answer `{"status":"ok"}` and `hung` servers that accept connections and never answer.
 * argv: <live> <hung>. Prints `{"live":[ports],"hung":[ports]}` on one stdout line, then runs
 * until its stdin closes.
 */
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net';

const [live = 0, hung = 0] = process.argv.slice(2).map(Number);
const body = JSON.stringify({
  status: 'ok',
  service: 'bench',
  uptime_seconds: 1,
  connected_clients: 0,
  ports: [],
  ts: new Date().toISOString(),
});

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1', 1024);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

const livePorts: number[] = [];
for (let index = 0; index < live; index += 1) {
  const server = createHttpServer((_request, response) => {
    response.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    response.end(body);
  });
  livePorts.push(await listen(server));
}
const hungPorts: number[] = [];
for (let index = 0; index < hung; index += 1) {
  hungPorts.push(await listen(createNetServer((socket) => socket.resume())));
}
process.stdout.write(`${JSON.stringify({ live: livePorts, hung: hungPorts })}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
