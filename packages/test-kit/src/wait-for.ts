/**
 * Bounded waits for tests: poll a condition until it holds, or race a promise against a deadline.
 * Never a fixed sleep; every wait names what it waits for, so a timeout says what did not happen.
 */

/**
 * Polls `check` every 20 ms until it returns a value other than undefined, null or false, and
 * resolves with that value. A `check` that throws counts as not yet; the last error is quoted in
 * the timeout message.
 *
 * @param timeoutMs - how long to poll, in ms. @default 10000
 * @param what - what is awaited, for the timeout message. @default 'condition'
 * @throws Error `timed out after N ms waiting for <what>` when the deadline passes.
 * @example
 * const pid = await waitFor(() => status().pid, 5_000, 'the agent to start');
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false && value !== null) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Resolves or rejects as `promise` does, or rejects after `timeoutMs` if it has not settled.
 *
 * @param timeoutMs - the bound, in ms.
 * @param what - what is awaited, for the timeout message. @default 'promise'
 * @throws Error `<what> did not settle within N ms` when the bound passes first.
 */
export async function within<T>(
  promise: Promise<T>,
  timeoutMs: number,
  what = 'promise',
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>(
        (_, reject) =>
          (timer = setTimeout(
            () => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)),
            timeoutMs,
          )),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
