import type { z } from 'zod';

/** Renders every zod issue as `path: message`, joined by `; ` (all issues at once, not the first). */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}
