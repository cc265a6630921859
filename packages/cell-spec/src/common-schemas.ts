import { z } from 'zod';

/** A lower-case hex SHA-256 digest. */
export const Sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be a hex sha256' });

/** The name of an environment variable: where a secret lives (configs name secrets, never hold them). */
export const EnvNameSchema = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
  message: 'must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)',
});
