// Releasing memory once idle: a collection runs when the process has grown and its event loop is idle, not while it
// is busy, and not when it has not grown. The process's resident memory is the test's own number, and the collection
// a recorder; the event loop's utilization is the real one.

import { waitFor } from '@billing/test/harness';
import { afterEach, expect, test } from '@jest/globals';
import { releaseMemoryWhenIdle } from '../src/memory.ts';

const MB = 1024 * 1024;
let stop: (() => void) | undefined;

afterEach(() => stop?.());

/** A watcher looking every 20 ms at a resident size the test sets, recording the look each collection follows. */
function watch(start: number) {
  let resident = start;
  let looks = 0;
  const collectedAt: number[] = [];
  stop = releaseMemoryWhenIdle({
    intervalMs: 20,
    growthBytes: 32 * MB,
    collect: () => collectedAt.push(looks),
    residentBytes: () => {
      looks++;
      return resident;
    },
  });
  return {
    grow: (bytes: number) => {
      resident += bytes;
    },
    looks: () => looks,
    collectedAt,
  };
}

/** Keeps the event loop busy for `ms`. */
function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test('a process that grew and is idle is collected once', async () => {
  const watcher = watch(100 * MB);
  watcher.grow(64 * MB);
  await waitFor(
    () => watcher.collectedAt.length,
    (n) => n === 1,
  );
  // Collected, its resident size is the new floor: later looks find no growth.
  const looked = watcher.looks();
  await waitFor(watcher.looks, (n) => n >= looked + 10);
  expect(watcher.collectedAt).toHaveLength(1);
});

test('a process that has not grown by the threshold is never collected', async () => {
  const watcher = watch(100 * MB);
  watcher.grow(16 * MB);
  await waitFor(watcher.looks, (n) => n >= 10);
  expect(watcher.collectedAt).toEqual([]);
});

test('a busy process is not collected until it is idle again', async () => {
  const watcher = watch(100 * MB);
  // The first look after the busy spell sees an interval spent working, and leaves the process alone.
  await waitFor(watcher.looks, (n) => n >= 1);
  watcher.grow(64 * MB);
  busyFor(200);
  const afterSpell = watcher.looks() + 1;
  await waitFor(
    () => watcher.collectedAt.length,
    (n) => n === 1,
  );
  expect(watcher.collectedAt[0]).toBeGreaterThan(afterSpell);
});
