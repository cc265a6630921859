import { z } from 'zod';

/** ISO-8601 timestamp in UTC (`2026-11-22T17:43:00.000Z`). */
export const IsoTimestampSchema = z.iso.datetime({
  offset: false,
  message: 'must be an ISO-8601 UTC timestamp (…Z)',
});
