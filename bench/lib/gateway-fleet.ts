/**
 * The HTTP gateways of bench/detection-at-scale.bench.ts: one process serving N `/health`
 * endpoints on 127.0.0.1 (one server, one port each, as N gateway processes would), any of
 * which can be made to hang: it then accepts connections and requests but never answers, and
 * records when each such request arrived (wall clock, µs resolution).
 * Usage: node gateway-fleet.ts N. Prints `{"ports":[…]}` once all listen; then reads JSON-line
 * commands: `{"cmd":"hang","indices":[…]}` → `{"ok":true,"at"}`; `{"cmd":"report"}` →
 * `{"ok":true,"requests","hungArrivals":{index:[t,…]}}`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';

const count = Number(process.argv[2] ?? '0');
const hung = new Set<number>();
const arrivals = new Map<number, number[]>();
const held: ServerResponse[] = [];
let requests = 0;
const startedAt = Date.now();
const body = (index: number) =>
  JSON.stringify({
    status: 'ok',
    gateway: index,
    uptime_s: Math.round((Date.now() - startedAt) / 1000),
  });

const ports = await Promise.all(
  Array.from({ length: count }, (_, index) => {
    const server = createServer((request: IncomingMessage, response: ServerResponse) => {
      requests += 1;
      if (hung.has(index)) {
        const list = arrivals.get(index) ?? [];
        list.push(performance.timeOrigin + performance.now());
        arrivals.set(index, list);
        held.push(response); // never answered
        request.resume();
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end(body(index));
    });
    server.keepAliveTimeout = 60_000;
    return new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
    );
  }),
);
process.stdout.write(`${JSON.stringify({ ports })}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as { cmd: string; indices?: number[] };
  if (command.cmd === 'hang') {
    for (const index of command.indices ?? []) hung.add(index);
    process.stdout.write(
      `${JSON.stringify({ ok: true, at: performance.timeOrigin + performance.now() })}\n`,
    );
  } else if (command.cmd === 'report') {
    process.stdout.write(
      `${JSON.stringify({ ok: true, requests, hungArrivals: Object.fromEntries(arrivals) })}\n`,
    );
  } else {
    process.stdout.write(
      `${JSON.stringify({ ok: false, error: `unknown command ${command.cmd}` })}\n`,
    );
  }
}
process.exit(0);
