// Deterministic content per revision/cycle, varying in size, so a torn or mixed write is visible.
export function missionFor(revision: number): string {
  return `mission at revision ${revision} ${'m'.repeat(1500 + ((revision * 7919) % 6000))}`;
}

export function heartbeatPaddingFor(cycle: number): string {
  return 'h'.repeat(200 + ((cycle * 7919) % 20_000));
}
