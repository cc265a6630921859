import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { cleanup } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { MissionBus } from '@pit/mission-bus';
import { createCheckpoint } from '@pit/snapshot';
import { makeCell } from '../test/helpers.js';
import { publishHandoff } from './handoff.js';

afterEach(cleanup);

describe('publishHandoff', () => {
  it('hands the dead agent’s own latest checkpoint to the substitute and writes the resume packet', async () => {
    const cell = await makeCell([{ name: 'forge', role: 'write' }]);
    const bus = await MissionBus.open({ cellDir: cell.dir });
    await bus.registerParticipant({ name: 'forge', role: 'write' });
    await bus.checkpoint('forge', { summary: 'first half done', state: { step: 1 } });
    const latest = await bus.checkpoint('forge', {
      summary: 'parser ported up to chapter 3',
      state: { step: 3 },
    });
    await bus.close();
    const handoff = await publishHandoff({
      cellDir: cell.dir,
      from: 'forge',
      to: 'anvil',
      note: 'forge died (SIGKILL)',
    });
    expect(handoff.packet).toMatchObject({
      from: 'forge',
      recipient: 'anvil',
      note: 'forge died (SIGKILL)',
      checkpoint: { id: latest.id, summary: 'parser ported up to chapter 3' },
    });
    expect(JSON.parse(await fs.readFile(handoff.packetPath, 'utf8'))).toEqual(
      JSON.parse(JSON.stringify(handoff.packet)),
    );
    expect(handoff.packetPath).toBe(join(cell.dir, '.lazarus', 'resume', 'anvil.json'));
  });

  it('without a checkpoint of the dead agent, publishes one from @pit pointing at the latest workspace checkpoint', async () => {
    const cell = await makeCell([{ name: 'forge', role: 'lead' }]);
    await fs.writeFile(join(cell.dir, 'workspace', 'notes.md'), 'work so far\n');
    const archived = await createCheckpoint(cell.dir, { createdBy: 'test' });
    const handoff = await publishHandoff({
      cellDir: cell.dir,
      from: 'forge',
      to: 'anvil',
      role: 'lead',
      note: 'forge died',
    });
    expect(handoff.packet.checkpoint.sender).toBe('@pit');
    expect(handoff.packet.workspace).toEqual({
      ts: archived.name,
      sha256: archived.manifest.sha256,
    });
    expect(
      handoff.packet.participants.find((participant) => participant.name === 'anvil')?.role,
    ).toBe('lead');
  });
});
