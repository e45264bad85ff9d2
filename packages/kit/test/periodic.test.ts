// Periodic jobs: passes never overlap, a failing pass is retried, work wakes the caller, stop waits.
import { startPeriodic } from '@billing/kit/periodic';
import { testLogger } from '@billing/test/harness';
import { expect, test } from '@jest/globals';

test('passes run one after another, survive a failure, report work, and stop waits for the last one', async () => {
  let running = 0;
  let overlapped = false;
  let passes = 0;
  const woken: number[] = [];
  const job = startPeriodic({
    name: 'test',
    intervalMs: 5,
    logger: testLogger,
    async run() {
      running += 1;
      if (running > 1) overlapped = true;
      passes += 1;
      await new Promise((r) => setTimeout(r, 10));
      running -= 1;
      if (passes === 2) throw new Error('a bad pass');
      return passes % 3 === 0 ? passes : 0;
    },
    afterWork: (done) => woken.push(done),
  });
  while (passes < 7) await new Promise((r) => setTimeout(r, 5));
  await job.stop();
  const after = passes;
  await new Promise((r) => setTimeout(r, 40));
  expect(overlapped).toBe(false);
  expect(running).toBe(0);
  expect(passes).toBe(after);
  expect(woken.slice(0, 2)).toEqual([3, 6]);
});
