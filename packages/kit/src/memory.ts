// What a process holds at rest. Starting a service loads and compiles every module, discovers the ORM's metadata
// and migrates: a burst of allocation that grows V8's young generation to its largest (16 MB semi-spaces) and
// leaves the old generation's pages committed. An idle service allocates too little to collect again, so that
// start-up garbage stays resident for good, about 35 MB of a service's 170. One collection that reduces the
// heap's footprint, once the process serves, gives it back; under load the heap grows again as it needs.
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
  setTimeout(() => gcExtension()({ type: 'major', execution: 'sync', flavor: 'last-resort' }), delayMs).unref();
}
