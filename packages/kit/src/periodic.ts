// A background job that runs a pass every interval until stopped: the next pass is scheduled when the last
// one ends (passes never overlap), a failing pass is logged and retried at the next tick, and stopping waits
// for the pass in progress.
import type { Logger } from 'pino';
import type { Subscription } from './bus.ts';

/** What a periodic job does. */
export interface PeriodicJob {
  /** The job's name, for logs. */
  name: string;
  /** Time between the end of a pass and the start of the next, in ms. */
  intervalMs: number;
  /** One pass; returns how much it did. */
  run(): Promise<number>;
  /** Called after a pass that did something (e.g. to wake the outbox relay). */
  afterWork?(done: number): void;
  /** Where failures are logged. */
  logger: Logger;
}

/** Starts a periodic job; its first pass runs at once. */
export function startPeriodic(job: PeriodicJob): Subscription {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<void> = Promise.resolve();
  const tick = () => {
    pass = job
      .run()
      .then((done) => {
        if (done > 0) job.afterWork?.(done);
      })
      .catch((err: unknown) => job.logger.warn({ err, job: job.name }, 'periodic job failed; will retry'))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, job.intervalMs);
      });
  };
  timer = setTimeout(tick, 0);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await pass;
    },
  };
}
