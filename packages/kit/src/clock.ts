// Domain code never calls Date.now(): it asks a Clock, so that tests and test clocks can drive time.

/** A source of the current time. */
export interface Clock {
  /** The current instant. */
  now(): Date;
}

/** The machine's wall clock. */
export const systemClock: Clock = { now: () => new Date() };

/** A clock that only moves when told to; for tests. */
export class ManualClock implements Clock {
  #time: number;

  constructor(start: Date) {
    this.#time = start.getTime();
  }

  now(): Date {
    return new Date(this.#time);
  }

  /** Moves the clock to `time` (which may not be in its past). */
  set(time: Date): void {
    if (time.getTime() < this.#time) throw new Error('a manual clock never goes back');
    this.#time = time.getTime();
  }

  /** Moves the clock forward by `ms` milliseconds. */
  advance(ms: number): void {
    this.set(new Date(this.#time + ms));
  }
}
