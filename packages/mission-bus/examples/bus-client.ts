// Two agents on the mission bus: forge plans, checkpoints and hands the work to smith, who
// fetches the resume packet and reads the stream.
// Run: node --conditions=@pit/source --import tsx examples/bus-client.ts <cell>/bus-demo.json
import { readFile } from 'node:fs/promises';
import { connectBus } from '@pit/mission-bus';

const details = JSON.parse(await readFile(process.argv[2] ?? 'bus-demo.json', 'utf8')) as {
  url: string;
  mission: string;
  tokens: { forge: string; smith: string };
};
const forge = await connectBus({
  url: details.url,
  mission: details.mission,
  participant: 'forge',
  token: details.tokens.forge,
});
const smith = await connectBus({
  url: details.url,
  mission: details.mission,
  participant: 'smith',
  token: details.tokens.smith,
});

const plan = await forge.publish({ topic: 'plan', payload: { steps: ['lex', 'parse'] } });
const checkpoint = await forge.checkpoint({
  summary: 'lexer done',
  state: { next: 'parse' },
  artifacts: ['src/lex.ts'],
});
const handoff = await forge.handoff({
  to: 'smith',
  checkpoint: checkpoint.id,
  note: 'the parser is yours',
});
console.log(
  `acknowledged: plan #${plan.seq}, checkpoint #${checkpoint.seq}, handoff #${handoff.seq}`,
);

const packet = await smith.resumePacket(handoff.id);
console.log(
  `smith resumes "${packet.checkpoint.summary}" from ${packet.from}: ${packet.note} (stream length ${packet.stream.length})`,
);

for await (const event of smith.subscribe({ after: 0 })) {
  console.log(`#${event.seq} ${event.event} from ${event.sender}`);
  if (event.seq === handoff.seq) break;
}
await forge.close();
await smith.close();
