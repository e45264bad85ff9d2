// A service run as its own process, as it is deployed: `services/<name>/src/main.ts` with an environment of the
// test's, its output read line by line, and its end (exit code or signal, and when) recorded. For tests of what
// an operator and a client see when a dependency fails under a service, and of how it stops.
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { sparePort } from './nats.ts';

/** The services that run as processes of their own. */
export type ServiceName = 'catalog' | 'subscription' | 'usage';

/** How a service process ended. */
export interface ServiceExit {
  /** The exit code; null when a signal ended it. */
  code: number | null;
  /** The signal that ended it, or null when it exited. */
  signal: NodeJS.Signals | null;
  /** When it ended (`Date.now()`). */
  at: number;
}

/** How a service process ended after a signal was sent to it. */
export interface SignalledExit extends ServiceExit {
  /** Time from the signal to the end, in ms. */
  afterMs: number;
}

/** A running (or ended) service process. */
export interface ServiceProcess {
  /** Which service it is. */
  readonly service: ServiceName;
  /** The port it was told to listen on (`<NAME>_PORT`), on 127.0.0.1. */
  readonly port: number;
  /** Base URL for clients. */
  readonly baseUrl: string;
  /** The complete lines it wrote to stdout so far (its JSON logs). */
  readonly stdout: readonly string[];
  /** The complete lines it wrote to stderr so far. */
  readonly stderr: readonly string[];
  /** Resolves when the process has ended. */
  readonly exited: Promise<ServiceExit>;
  /** Whether it still runs. */
  running(): boolean;
  /** How it ended, if it ends within `timeoutMs`; undefined if it still runs then. */
  exitWithin(timeoutMs: number): Promise<ServiceExit | undefined>;
  /** Sends `signal` (SIGTERM unless given) and resolves when the process has ended. */
  signal(signal?: NodeJS.Signals): Promise<SignalledExit>;
  /** Ends it with SIGKILL if it still runs; resolves when it has ended. */
  kill(): Promise<void>;
}

const root = fileURLToPath(new URL('../../', import.meta.url));

/** The main of a service, as `node services/<name>/src/main.ts` runs it. */
export const serviceMain = (service: ServiceName) => `${root}services/${service}/src/main.ts`;

/** Splits a stream into lines, pushing each complete line (and the last one when the stream ends). */
function collectLines(stream: NodeJS.ReadableStream, into: string[]): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    into.push(...lines);
  });
  stream.on('end', () => {
    if (partial !== '') into.push(partial);
    partial = '';
  });
}

/**
 * Starts `services/<service>/src/main.ts` with the test's environment plus `env` (its port, `<NAME>_PORT`, is a
 * spare one unless `env` sets it) and does not wait for it to listen.
 */
export async function spawnServiceProcess(service: ServiceName, env: Record<string, string>): Promise<ServiceProcess> {
  const portSetting = `${service.toUpperCase()}_PORT`;
  const port = Number(env[portSetting] ?? (await sparePort()));
  const child: ChildProcess = spawn(process.execPath, [serviceMain(service)], {
    env: { ...process.env, NODE_OPTIONS: '', [portSetting]: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  if (child.stdout) collectLines(child.stdout, stdout);
  if (child.stderr) collectLines(child.stderr, stderr);
  // 'close' comes after the process ended and its output was read to the end, so every line is in.
  const exited = new Promise<ServiceExit>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal, at: Date.now() }));
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    service,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    stdout,
    stderr,
    exited,
    running,
    async exitWithin(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), timeoutMs);
      });
      try {
        return await Promise.race([exited, late]);
      } finally {
        clearTimeout(timer);
      }
    },
    async signal(signal = 'SIGTERM') {
      const sentAt = Date.now();
      if (running()) child.kill(signal);
      const exit = await exited;
      return { ...exit, afterMs: exit.at - sentAt };
    },
    async kill() {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Whether something accepts a TCP connection on 127.0.0.1:`port` now. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Starts a service process as `spawnServiceProcess` does and resolves once its port accepts connections (a
 * service binds its port before it opens anything else); fails with its output if it ends first or does not
 * listen within `timeoutMs`.
 */
export async function startServiceProcess(
  service: ServiceName,
  env: Record<string, string>,
  { timeoutMs = 30_000 }: { timeoutMs?: number } = {},
): Promise<ServiceProcess> {
  const started = await spawnServiceProcess(service, env);
  const deadline = Date.now() + timeoutMs;
  while (!(await accepts(started.port))) {
    const output = () => [...started.stderr, ...started.stdout].join('\n');
    if (!started.running()) {
      await started.exited;
      throw new Error(`${service} ended before it listened:\n${output()}`);
    }
    if (Date.now() > deadline) {
      await started.kill();
      throw new Error(`${service} did not listen within ${timeoutMs} ms:\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return started;
}
