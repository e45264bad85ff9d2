// Domain code never calls Date.now(): it asks a Clock, so that tests and test clocks can drive time.

/** A source of the current time. */
export interface Clock {
  /** The current instant. */
  now(): Date;
}

/** The machine's wall clock. */
export const systemClock: Clock = { now: () => new Date() };
