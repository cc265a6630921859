/**
 * Whether a process with this pid exists (signal 0). `EPERM` means it exists but belongs to
 * someone else. A pid from another pid namespace cannot be judged this way: callers pair it
 * with an age limit.
 */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
