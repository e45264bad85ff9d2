// Real processes for tests of what an operator sees: a command's exit code and output, and a port that
// another process holds.
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** How a process ended: its exit code or the signal that ended it, and everything it wrote. */
export interface ProcessOutcome {
  /** The exit code (0 when it succeeded); null when a signal ended it. */
  code: number | null;
  /** The signal that ended it (SIGKILL when it outlived its timeout), or null when it exited. */
  signal: NodeJS.Signals | null;
  /** What it wrote to stdout. */
  stdout: string;
  /** What it wrote to stderr. */
  stderr: string;
}

// How long a script may run before it is killed: long enough for a slow start on a loaded machine, and short
// of Jest's timeout, so that a process that should have stopped at once (and serves instead) fails its test
// with the signal rather than hanging it, and leaves no port held.
const SCRIPT_TIMEOUT_MS = 30_000;

/**
 * Runs a TypeScript file with this Node, the given environment added to the test's, and waits for its end; kills
 * it with SIGKILL after `timeoutMs`.
 */
export async function runNodeScript(
  script: string,
  args: readonly string[],
  env: Record<string, string>,
  { timeoutMs = SCRIPT_TIMEOUT_MS }: { timeoutMs?: number } = {},
): Promise<ProcessOutcome> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [script, ...args], {
      env: { ...process.env, NODE_OPTIONS: '', ...env },
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    return { code: 0, signal: null, stdout, stderr };
  } catch (err) {
    const failed = err as { code?: unknown; signal?: NodeJS.Signals | null; stdout: string; stderr: string };
    const signal = failed.signal ?? null;
    // An exit code, or a signal; anything else (a spawn that failed) is no outcome of the script.
    if (typeof failed.code !== 'number' && signal === null) throw err;
    return {
      code: typeof failed.code === 'number' ? failed.code : null,
      signal,
      stdout: failed.stdout,
      stderr: failed.stderr,
    };
  }
}

/** A port on the loopback interface held by a listener of the test's own, as another process would hold it. */
export interface OccupiedPort {
  /** The port. */
  port: number;
  /** Lets the port go. */
  release(): Promise<void>;
}

/** Binds a free loopback port and holds it until released. */
export async function occupyPort(): Promise<OccupiedPort> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
