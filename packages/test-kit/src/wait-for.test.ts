import { describe, expect, it } from 'vitest';
import { waitFor, within } from './wait-for.js';

describe('waitFor', () => {
  it('resolves with the first value that is not undefined, null or false', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? `call ${calls}` : false), 2_000, 'call 3');
    expect(value).toBe('call 3');
  });

  it('retries a check that throws, and names what it waited for and the last error on timeout', async () => {
    await expect(
      waitFor(
        () => {
          throw new Error('not yet');
        },
        100,
        'the answer',
      ),
    ).rejects.toThrow(/timed out after 100 ms waiting for the answer: Error: not yet/);
  });
});

describe('within', () => {
  it('passes a settled promise through', async () => {
    await expect(within(Promise.resolve(7), 1_000)).resolves.toBe(7);
  });

  it('rejects, naming what it waited for, when the promise does not settle in time', async () => {
    await expect(within(new Promise(() => {}), 50, 'the reply')).rejects.toThrow(
      'the reply did not settle within 50 ms',
    );
  });
});
