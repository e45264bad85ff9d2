// A process of the benchmarks: spawned with this Node from the repository's root, its resident memory read from
// /proc/<pid>/status (VmRSS now, VmHWM its peak), and its serving known from its health checks. A service runs as
// deployed: `node services/<name>/src/main.ts` with the NODE_OPTIONS of its manifest, on a fresh PostgreSQL database
// of its own and NATS.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Health, HealthCheckResponse_ServingStatus } from '@billing/proto/health/v1/health_pb';
import {
  createTestDatabase,
  deleteTestStreams,
  sparePort,
  TEST_NATS_URL,
  type TestDatabase,
  testSubjectPrefix,
} from '@billing/test/harness';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';

/** The repository's root, where every process starts. */
export const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Resident memory of a process, in MB: now (VmRSS) and its peak since it started (VmHWM). */
export interface Resident {
  rssMb: number;
  peakMb: number;
}

function statusMb(status: string, field: 'VmRSS' | 'VmHWM'): number {
  const kb = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1];
  if (kb === undefined) throw new Error(`no ${field} in /proc/<pid>/status`);
  return Number(kb) / 1024;
}

/** The resident memory of process `pid`. */
export function residentOf(pid: number): Resident {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssMb: statusMb(status, 'VmRSS'), peakMb: statusMb(status, 'VmHWM') };
}

/** A spawned process, its stderr kept for the error that says why it failed. */
export interface Spawned {
  child: ChildProcess;
  /** Its pid, once it runs. */
  pid: number;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Its resident memory now; throws when it has exited. */
  resident(): Resident;
  /** SIGTERM, then resolves once it has exited. */
  stop(): Promise<void>;
}

/** Spawns `node <args>` from the root with `env` (and PATH, LOG_LEVEL=warn), stdout drained. */
export function spawnNode(args: readonly string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdout?.resume();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`node ${args.join(' ')} did not start`);
  return {
    child,
    pid,
    stderr: () => stderr,
    resident() {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`the process exited (${child.exitCode ?? child.signalCode})\n${stderr}`);
      }
      return residentOf(pid);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Resolves when every health check on `ports` answers SERVING; polls every 10 ms. */
export async function healthServing(child: ChildProcess, ports: readonly number[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (const port of ports) {
    const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the process exited (${child.exitCode}) before serving`);
      if (Date.now() > deadline) throw new Error(`port ${port} never answered SERVING`);
      const answer = await health.check({}, { timeoutMs: 1_000 }).catch(() => undefined);
      if (answer?.status === HealthCheckResponse_ServingStatus.SERVING) break;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/**
 * The Node options a service runs with: SERVICE_NODE_OPTIONS when set (empty for none), else the NODE_OPTIONS its
 * manifest (deploy/base/<name>.yaml) gives its container, else none.
 */
export function serviceNodeOptions(name: string): string {
  const chosen = process.env.SERVICE_NODE_OPTIONS;
  if (chosen !== undefined) return chosen;
  const manifest = readFileSync(join(root, 'deploy', 'base', `${name}.yaml`), 'utf8');
  return /name:\s*NODE_OPTIONS,\s*value:\s*"([^"]*)"/.exec(manifest)?.[1] ?? '';
}

/** Where one service's processes run: a fresh database and subject prefix of their own. */
export interface ServiceSetting {
  name: string;
  database: TestDatabase;
  prefix: string;
  /** Drops the database and the streams. */
  drop(): Promise<void>;
}

/**
 * A fresh database for service `name`, labelled `label`, and a fresh subject prefix, or `prefix` to share another's
 * events (its streams are then the other's to delete too).
 */
export async function serviceSetting(name: string, label: string, prefix?: string): Promise<ServiceSetting> {
  const database = await createTestDatabase(`${label}_${name}`);
  const ownPrefix = prefix ?? testSubjectPrefix(`${label}_${name}`);
  return {
    name,
    database,
    prefix: ownPrefix,
    async drop() {
      await database.drop();
      await deleteTestStreams(ownPrefix);
    },
  };
}

/** CPU time a process has used so far (user and system), in ms, from /proc/<pid>/stat. */
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime, fields 14 and 15 of stat (11 and 12 after the command): Linux counts 100 ticks per second.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** A service process that serves. */
export interface ServiceProcess extends Spawned {
  /** Its base URL (h2c). */
  baseUrl: string;
}

/**
 * Spawns the service of `setting` as its deployment runs it (`node services/<name>/src/main.ts`, its port, database,
 * NATS and Node options in the environment, `extraEnv` added), and resolves once it serves.
 */
export async function startServiceProcess(
  setting: ServiceSetting,
  extraEnv: Record<string, string> = {},
): Promise<ServiceProcess & { startMs: number }> {
  const upper = setting.name.toUpperCase();
  const port = await sparePort();
  const started = performance.now();
  const spawned = spawnNode([`services/${setting.name}/src/main.ts`], {
    NODE_OPTIONS: serviceNodeOptions(setting.name),
    [`${upper}_PORT`]: String(port),
    [`${upper}_DATABASE_URL`]: setting.database.url,
    NATS_URL: TEST_NATS_URL,
    NATS_SUBJECT_PREFIX: setting.prefix,
    // The subscription service calls the catalog only when asked to; nothing listens here.
    CATALOG_URL: `http://127.0.0.1:${await sparePort()}`,
    ...extraEnv,
  });
  try {
    await healthServing(spawned.child, [port]);
  } catch (err) {
    await spawned.stop();
    throw new Error(`${setting.name}: ${(err as Error).message}\n${spawned.stderr()}`);
  }
  return { ...spawned, baseUrl: `http://127.0.0.1:${port}`, startMs: performance.now() - started };
}
