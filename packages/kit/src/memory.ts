// What a process holds at rest. Starting a service loads and compiles every module, discovers the ORM's metadata
// and migrates: a burst of allocation that grows V8's young generation to its largest (16 MB semi-spaces) and
// leaves the old generation's pages committed. An idle service allocates too little to collect again, so that
// start-up garbage stays resident for good, about 35 MB of a service's 170. One collection that reduces the
// heap's footprint, once the process serves, gives it back; under load the heap grows again as it needs. A busy
// spell (sustained ingestion, a burst of large requests) leaves the same behind: V8 keeps the pages it grew to, and
// an idle process does not collect again, so the same collection is run once the process is idle after one.
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';

/** V8's gc() extension: `last-resort` is the collection V8 runs on memory pressure, shrinking every space. */
type GcExtension = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

// The gc() of a process started with --expose-gc, or else one from a context made while the flag is on (the
// extension is installed on contexts created meanwhile); the flag is turned off again at once.
function gcExtension(): GcExtension {
  const exposed = (globalThis as { gc?: GcExtension }).gc;
  if (exposed) return exposed;
  v8.setFlagsFromString('--expose-gc');
  try {
    return vm.runInNewContext('gc') as GcExtension;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
}

/**
 * Returns the garbage of start-up to the system, `delayMs` after the process has started everything and serves:
 * one full collection that shrinks the heap. It takes some tens of milliseconds, so it waits for the first calls
 * (a readiness probe) to be answered; the timer does not keep the process alive.
 */
export function releaseStartupMemorySoon(delayMs = 1_000): void {
  setTimeout(collectToShrink, delayMs).unref();
}

/** One full collection that shrinks every space of the heap and gives its free pages back to the system. */
function collectToShrink(): void {
  gcExtension()({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}

/** How `releaseMemoryWhenIdle` watches the process. */
export interface IdleReleaseOptions {
  /** How often it looks, in ms (5 s). */
  intervalMs?: number;
  /** Growth of resident memory since the last collection that is worth one, in bytes (32 MiB). */
  growthBytes?: number;
  /** The largest share of an interval the event loop may have been busy for the process to count as idle (5%). */
  idleUtilization?: number;
  /** The collection run (collectToShrink; a test passes its own). */
  collect?: () => void;
  /** The process's resident memory, in bytes (process.memoryUsage.rss; a test passes its own). */
  residentBytes?: () => number;
}

/**
 * Gives back what a busy spell left resident, once the process is idle again: every `intervalMs`, when its event
 * loop was busy for less than `idleUtilization` of the interval and its resident memory has grown by `growthBytes`
 * since the last collection (or since the call), one collection that shrinks the heap, as at start-up. Under
 * sustained ingestion the usage service held 220 MB when it went idle, 157 MB after it (the collection took 135 ms
 * of CPU, once). The timer does not keep the process alive; returns what stops it.
 */
export function releaseMemoryWhenIdle(options: IdleReleaseOptions = {}): () => void {
  const {
    intervalMs = 5_000,
    growthBytes = 32 * 1024 * 1024,
    idleUtilization = 0.05,
    collect = collectToShrink,
    residentBytes = () => process.memoryUsage.rss(),
  } = options;
  let floor = residentBytes();
  let last = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    const resident = residentBytes();
    if (busy > idleUtilization || resident < floor + growthBytes) {
      floor = Math.min(floor, resident);
      return;
    }
    collect();
    floor = residentBytes();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
