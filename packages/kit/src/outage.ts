// A dependency's outage as the logs tell it: one warning when it starts, one when it ends with how long it lasted
// and how many calls it failed, and nothing per call above debug. The dependency's client reports each
// operation's outcome with the time the operation was issued, so that an operation issued before a change
// (a query that was in flight when the database went away, or one that was stuck and fails after it came back)
// never starts or ends an outage by itself: the state follows the operations issued since the last change.

import type { Logger } from 'pino';

/** The outage state of one dependency, fed by its client and by the error interceptor. */
export interface Outage {
  /** True from the first failure that shows the dependency unreachable until an operation succeeds again. */
  readonly ongoing: boolean;
  /** An operation issued at `since` (performance.now()) failed because the dependency cannot be reached. */
  unreachable(err: unknown, since: number): void;
  /** An operation issued at `since` succeeded. */
  reachable(since: number): void;
  /** A call begun at `since` failed because the dependency cannot be reached (or, during an outage, timed out). */
  callFailed(err: unknown, since: number): void;
}

// The most of an error's message an outage line quotes (driver messages are short; this bounds the others).
const MAX_LOGGED_MESSAGE = 200;

/** What an outage line says of the error that started it: its code and the start of its message. */
function summary(err: unknown): { message: string; code?: string } {
  const { message, code } = (typeof err === 'object' && err !== null ? err : {}) as {
    message?: unknown;
    code?: unknown;
  };
  return {
    message: (typeof message === 'string' ? message : String(err)).slice(0, MAX_LOGGED_MESSAGE),
    ...(typeof code === 'string' ? { code } : {}),
  };
}

/** Tracks the outages of `dependency` (e.g. `database`), logging to `logger`. */
export function trackOutage(dependency: string, logger: Logger, now: () => number = () => performance.now()): Outage {
  let startedAt: number | undefined;
  let endedAt = Number.NEGATIVE_INFINITY;
  let failedCalls = 0;
  const begin = (err: unknown) => {
    startedAt = now();
    failedCalls = 0;
    logger.warn({ dependency, error: summary(err) }, `${dependency} unreachable`);
  };
  return {
    get ongoing() {
      return startedAt !== undefined;
    },
    unreachable(err, since) {
      if (startedAt === undefined && since >= endedAt) begin(err);
    },
    reachable(since) {
      if (startedAt === undefined || since < startedAt) return;
      const outageMs = Math.round(now() - startedAt);
      logger.warn({ dependency, failedCalls, outageMs }, `${dependency} reachable again`);
      endedAt = now();
      startedAt = undefined;
    },
    callFailed(err, since) {
      if (startedAt === undefined && since >= endedAt) begin(err);
      if (startedAt !== undefined) failedCalls++;
    },
  };
}
