import { promises as fs } from 'node:fs';
import { cleanup, tempDir } from '@pit/test-kit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  daemonFilePath,
  readDaemonFile,
  removeDaemonFile,
  writeDaemonFile,
} from './daemon-file.js';

afterEach(cleanup);

describe('daemon.json', () => {
  it('records pid, url, bus url and start time, and is removed only by the daemon it names', async () => {
    const stateDir = await tempDir();
    const record = {
      pid: process.pid,
      url: 'http://127.0.0.1:41234',
      bus_url: 'ws://127.0.0.1:41235',
      started_at: new Date().toISOString(),
    };
    await writeDaemonFile(stateDir, record);
    expect(JSON.parse(await fs.readFile(daemonFilePath(stateDir), 'utf8'))).toEqual(record);
    expect(await readDaemonFile(stateDir)).toEqual(record);
    await removeDaemonFile(stateDir, process.pid + 1);
    expect(await readDaemonFile(stateDir)).toEqual(record);
    await removeDaemonFile(stateDir, process.pid);
    expect(await readDaemonFile(stateDir)).toBeUndefined();
    await removeDaemonFile(stateDir, process.pid);
  });

  it('reads a corrupt or foreign file as absent', async () => {
    const stateDir = await tempDir();
    await fs.writeFile(daemonFilePath(stateDir), '{"pid": "nope"');
    expect(await readDaemonFile(stateDir)).toBeUndefined();
    await expect(writeDaemonFile(stateDir, { pid: 0, started_at: 'yesterday' })).rejects.toThrow();
  });
});
