/**
 * The server side of bench/fanout.bench.ts, in its own process so that it has a core of its
 * own: `mode` `bare` is a plain ws broadcast server with no log (the ceiling); any other mode
 * is a MissionBus with that fsync policy behind createBusServer. Prints `READY <port>`.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { MissionBus } from '../src/mission-bus.js';
import { createBusServer } from '../src/server.js';
import type { BusConfigInput, FsyncPolicy } from '../src/config.js';

process.once('exit', () => {
  const { user, system } = process.cpuUsage();
  process.stderr.write(
    `fanout-server ${process.argv[2] ? JSON.parse(process.argv[2]).mode : ''}: cpu user ${Math.round(user / 1000)} ms, system ${Math.round(system / 1000)} ms\n`,
  );
});
const options = JSON.parse(process.argv[2] ?? '{}') as {
  mode: 'bare' | FsyncPolicy['mode'];
  cellDir: string;
  config: BusConfigInput;
};

if (options.mode === 'bare') {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  const subscribers = new Set<WebSocket>();
  let seq = 0;
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { op: string; ref: number; payload?: unknown };
      if (frame.op === 'subscribe') {
        subscribers.add(ws);
        ws.send(JSON.stringify({ type: 'subscribed', ref: frame.ref }));
        return;
      }
      seq += 1;
      const event = `{"type":"event","event":${JSON.stringify({ seq, payload: frame.payload })}}`;
      for (const subscriber of subscribers) subscriber.send(event);
      ws.send(JSON.stringify({ type: 'ack', ref: frame.ref, seq }));
    });
    ws.on('close', () => subscribers.delete(ws));
  });
  await new Promise((resolve) => wss.once('listening', resolve));
  process.stdout.write(`READY ${(wss.address() as { port: number }).port}\n`);
  process.once('SIGTERM', () => process.exit(0));
} else {
  const bus = await MissionBus.open({ cellDir: options.cellDir, config: options.config });
  const server = await createBusServer({ buses: [bus], maxBufferedBytes: 32 * 1024 * 1024 });
  process.stdout.write(`READY ${server.port}\n`);
  process.once('SIGTERM', () => {
    void server
      .close()
      .then(() => bus.close())
      .then(() => process.exit(0));
  });
}
