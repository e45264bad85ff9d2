// Periodic jobs: passes never overlap, a failing pass is retried, work wakes the caller, stop waits.
import { startPeriodic } from '@billing/kit/periodic';
import { testLogger, waitFor } from '@billing/test/harness';
import { expect, jest, test } from '@jest/globals';

/** A periodic job every 5 ms whose passes take 10 ms each and do what `pass` says; it counts them. */
function startSlowJob(pass: (n: number) => number = () => 0) {
  const state = { passes: 0, running: 0, overlapped: false };
  const woken: number[] = [];
  const job = startPeriodic({
    name: 'test',
    intervalMs: 5,
    logger: testLogger,
    async run() {
      state.running += 1;
      if (state.running > 1) state.overlapped = true;
      state.passes += 1;
      const n = state.passes;
      // A pass outlasts the interval, so a job that scheduled passes by the clock would start one during another.
      await new Promise((r) => setTimeout(r, 10));
      state.running -= 1;
      return pass(n);
    },
    afterWork: (done) => woken.push(done),
  });
  return { job, state, woken };
}

test('passes run one after another, never overlapping', async () => {
  const { job, state } = startSlowJob();
  try {
    await waitFor(
      () => state.passes,
      (n) => n >= 7,
    );
    expect(state.overlapped).toBe(false);
  } finally {
    await job.stop();
  }
});

test('a failing pass is followed by the next one', async () => {
  const { job, state } = startSlowJob((n) => {
    if (n === 2) throw new Error('a bad pass');
    return 0;
  });
  try {
    await waitFor(
      () => state.passes,
      (n) => n >= 4,
    );
  } finally {
    await job.stop();
  }
});

test('a pass that did work is reported with how much it did, one that did none is not', async () => {
  const { job, woken } = startSlowJob((n) => (n % 3 === 0 ? n : 0));
  try {
    await waitFor(
      () => woken.length,
      (n) => n >= 2,
    );
    expect(woken.slice(0, 2)).toEqual([3, 6]);
  } finally {
    await job.stop();
  }
});

test('stop waits for the pass in progress, and no pass starts after it', async () => {
  // Fake timers let the test move time on past many intervals after the stop, and see that none started a pass.
  jest.useFakeTimers();
  try {
    const { job, state } = startSlowJob();
    // Passes start at 0, 15 and 30 ms: the third is in progress.
    await jest.advanceTimersByTimeAsync(30);
    expect(state).toMatchObject({ passes: 3, running: 1 });
    let stopped = false;
    const stopping = job.stop().then(() => {
      stopped = true;
    });
    await jest.advanceTimersByTimeAsync(5);
    expect(stopped).toBe(false);
    await jest.advanceTimersByTimeAsync(5);
    await stopping;
    expect(state.running).toBe(0);
    await jest.advanceTimersByTimeAsync(1_000);
    expect(state.passes).toBe(3);
  } finally {
    jest.useRealTimers();
  }
});
