import { formatIssues } from '@pit/cell-spec';
import { z } from 'zod';
import { NotifyError } from './errors.js';

/**
 * Validates a config section, reporting every bad key at once as `<section>.<path>: message`.
 * @throws {NotifyError} NOTIFY_INVALID_CONFIG.
 */
export function parseConfig<T extends z.ZodType>(
  schema: T,
  value: unknown,
  section: string,
): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = formatIssues(parsed.error)
      .split('; ')
      .map((issue) =>
        issue.startsWith('(root)') ? `[${section}]${issue.slice(6)}` : `[${section}] ${issue}`,
      )
      .join('; ');
    throw new NotifyError('NOTIFY_INVALID_CONFIG', issues, { cause: parsed.error });
  }
  return parsed.data;
}

/** An environment variable name: config names where a secret lives; the daemon resolves it. */
export { EnvNameSchema } from '@pit/cell-spec';
