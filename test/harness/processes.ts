// Real processes for tests of what an operator sees: a command's exit code and output, and a port that
// another process holds.
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** How a process ended: its exit code and everything it wrote. */
export interface ProcessOutcome {
  /** The exit code (0 when it succeeded). */
  code: number;
  /** What it wrote to stdout. */
  stdout: string;
  /** What it wrote to stderr. */
  stderr: string;
}

/** Runs a TypeScript file with this Node, the given environment added to the test's, and waits for its end. */
export async function runNodeScript(
  script: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<ProcessOutcome> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [script, ...args], {
      env: { ...process.env, NODE_OPTIONS: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as ProcessOutcome;
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
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
