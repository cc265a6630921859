import { z } from 'zod';

/**
 * How an agent is contained. Level 1: the cell's `workspace/` as working directory.
 * Level 2: a private mount namespace where only the cell is writable and other homes are
 * hidden. Level 3: rootless Podman with only the cell mounted.
 */
export const IsolationLevelSchema = z.union([z.literal(1), z.literal(2), z.literal(3)]);
export type IsolationLevel = z.infer<typeof IsolationLevelSchema>;

/** An isolation profile, as stored in `cell.json` and in the daemon's agent config. */
export const IsolationProfileSchema = z.strictObject({
  level: IsolationLevelSchema,
  /** Network access (levels 2 and 3): `none` gives loopback only. @default 'none' for level 3, 'host' otherwise */
  network: z.enum(['none', 'host']).optional(),
  /** Level 3: the container image, or a root filesystem directory with `rootfs:` prefix. */
  image: z.string().min(1).optional(),
  /** Extra absolute paths made read-only visible (levels 2 and 3). */
  readonly_paths: z.array(z.string().startsWith('/')).optional(),
});
export type IsolationProfile = z.infer<typeof IsolationProfileSchema>;
