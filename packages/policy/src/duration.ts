import { z } from 'zod';

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION_PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;

/**
 * A duration in the policy config, written the TOML-friendly way: a string with a unit
 * (`"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"`) or a bare number of seconds (`90`).
 * Parses to milliseconds.
 */
export const DurationSchema = z
  .union([z.number(), z.string()], {
    error: 'must be a duration such as "30s", "5m", "1h" or a number of seconds',
  })
  .transform((value, context) => {
    const ms =
      typeof value === 'number'
        ? Number.isFinite(value) && value >= 0
          ? Math.round(value * 1_000)
          : undefined
        : parseDuration(value);
    if (ms === undefined) {
      context.addIssue({
        code: 'custom',
        message: `must be a duration such as "500ms", "30s", "5m", "1h", "2d" or a non-negative number of seconds (got ${JSON.stringify(value)})`,
      });
      return z.NEVER;
    }
    return ms;
  })
  .meta({
    description:
      'A duration: a string with a unit ("500ms", "30s", "5m", "1h", "2d") or a number of seconds.',
  });

/** What a config file may write for a duration: `"30s"` or a number of seconds. */
export type DurationInput = z.input<typeof DurationSchema>;

/** Parses `"30s"`, `"5m"`, `"1.5h"` … into milliseconds; `undefined` if it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim());
  if (!match) return undefined;
  const unit = match[2] as keyof typeof UNIT_MS;
  return Math.round(Number(match[1]) * UNIT_MS[unit]);
}

/**
 * Renders milliseconds for a human: `"45s"`, `"2m30s"`, `"1h5m"`, `"250ms"`; negative values
 * are rendered as zero.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '0s';
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  // The two largest non-zero units, without building arrays: decide() renders one or more per call.
  let rest = Math.round(ms / 1_000);
  let text = '';
  let parts = 0;
  for (let unit = 0; unit < DISPLAY_UNITS.length && parts < 2; unit += 1) {
    const size = DISPLAY_SIZES[unit] as number;
    if (rest >= size) {
      text += `${Math.floor(rest / size)}${DISPLAY_UNITS[unit] as string}`;
      rest %= size;
      parts += 1;
    }
  }
  return text || '0s';
}

const DISPLAY_UNITS = ['d', 'h', 'm', 's'] as const;
const DISPLAY_SIZES = [86_400, 3_600, 60, 1] as const;
