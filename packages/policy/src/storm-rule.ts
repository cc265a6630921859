/**
 * The storm rule: when many deaths at once are a storm. One rule for the fleet brake (which
 * spaces restarts) and for the daemon's storm alerts (which group pages), so the two never
 * disagree about what a storm is. Pure: counts in, a verdict out.
 */
import type { FleetBrake } from './policy-config.js';

/** The fleet brake's thresholds that define a storm. */
export type StormThresholds = Pick<FleetBrake, 'max_deaths' | 'max_percent' | 'min_agents'>;

/**
 * Whether `deaths` (counted within one fleet-brake `window`) make a storm: more than
 * `max_deaths`, or more than `max_percent` of a fleet of at least `min_agents`. Without a
 * `fleetSize` only `max_deaths` counts.
 * @example
 * isDeathStorm({ deaths: 3, fleetSize: 4, brake: { max_deaths: 5, max_percent: 50, min_agents: 4 } }); // true: 75 %
 */
export function isDeathStorm(options: {
  deaths: number;
  /** Agents in the fleet when the deaths were counted. */
  fleetSize?: number | undefined;
  brake: StormThresholds;
}): boolean {
  const { deaths, fleetSize, brake } = options;
  if (deaths > brake.max_deaths) return true;
  if (fleetSize === undefined || fleetSize <= 0 || fleetSize < brake.min_agents) return false;
  return (deaths / fleetSize) * 100 > brake.max_percent;
}
