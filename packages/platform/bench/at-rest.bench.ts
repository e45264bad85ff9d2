// A service at rest: how long each process takes from spawn to serving, and how much it holds resident once it
// has been idle for BENCH_IDLE_MS (5 s unless set). Each service runs alone as its own process, as deployed, on a
// fresh PostgreSQL database of its own and NATS; `pnpm start` runs as its package script says, every service in
// one process on its embedded database, first on a fresh data folder (the run that creates the database) and then
// again on the same folder. Serving is the first SERVING answer of every health check the process serves;
// resident memory is VmRSS of /proc/<pid>/status, and VmHWM its peak. The baselines, measured in the same run:
// a Node process that loads nothing, and one that only serves the health check from a bare connect-node server.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Health, HealthCheckResponse_ServingStatus } from '@billing/proto/health/v1/health_pb';
import {
  createTestDatabase,
  deleteTestStreams,
  sparePort,
  TEST_NATS_URL,
  testSubjectPrefix,
} from '@billing/test/harness';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';

const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 5_000);
const STARTS = Number(process.env.BENCH_STARTS ?? 3);
const SERVICE_START_TARGET_MS = 1_000;
const SERVICE_RSS_TARGET_MB = 150;
const PLATFORM_RSS_TARGET_MB = 400;

const root = fileURLToPath(new URL('../../../', import.meta.url));
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/** One measured process. */
interface AtRest {
  /** From spawn to serving, in ms. */
  startMs: number;
  /** Resident memory after the idle time, in MB. */
  rssMb: number;
  /** Peak resident memory, in MB. */
  peakMb: number;
}

/** How to run one process and know it serves. */
interface Run {
  args: string[];
  env: Record<string, string>;
  /** Resolves once the process serves. */
  serving(child: ChildProcess): Promise<void>;
}

function statusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1];
  if (kb === undefined) throw new Error(`no ${field} for process ${pid}`);
  return Number(kb) / 1024;
}

/** Resolves when every health check on `ports` answers SERVING; polls every 10 ms. */
async function healthServing(child: ChildProcess, ports: readonly number[]): Promise<void> {
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

/** Resolves at the process's first line on stdout. */
function firstLine(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the process exited (${code}) before it wrote`)));
  });
}

async function measure(run: Run): Promise<AtRest> {
  const started = performance.now();
  const child = spawn(process.execPath, run.args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...run.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdout?.resume();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await run.serving(child);
    const startMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const pid = child.pid;
    if (pid === undefined || child.exitCode !== null) throw new Error('the process stopped while idle');
    return { startMs, rssMb: statusMb(pid, 'VmRSS'), peakMb: statusMb(pid, 'VmHWM') };
  } catch (err) {
    throw new Error(`${run.args.join(' ')}: ${(err as Error).message}\n${stderr}`);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

/** The median of `STARTS` runs of each figure (start times vary with the machine's load). */
async function medianOf(runs: () => Promise<AtRest>): Promise<AtRest> {
  const all: AtRest[] = [];
  for (let i = 0; i < STARTS; i++) all.push(await runs());
  const median = (pick: (r: AtRest) => number) => {
    const sorted = all.map(pick).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] ?? 0;
  };
  return { startMs: median((r) => r.startMs), rssMb: median((r) => r.rssMb), peakMb: median((r) => r.peakMb) };
}

async function service(name: string): Promise<AtRest> {
  const database = await createTestDatabase(`at_rest_${name}`);
  const prefix = testSubjectPrefix(`at_rest_${name}`);
  const upper = name.toUpperCase();
  try {
    return await medianOf(async () => {
      const port = await sparePort();
      return measure({
        args: [`services/${name}/src/main.ts`],
        env: {
          [`${upper}_PORT`]: String(port),
          [`${upper}_DATABASE_URL`]: database.url,
          NATS_URL: TEST_NATS_URL,
          NATS_SUBJECT_PREFIX: prefix,
          // The subscription service calls the catalog only when asked to; nothing listens here.
          CATALOG_URL: `http://127.0.0.1:${await sparePort()}`,
        },
        serving: (child) => healthServing(child, [port]),
      });
    });
  } finally {
    await database.drop();
    await deleteTestStreams(prefix);
  }
}

/** `pnpm start` as the root package's script runs it: `node <flags> <main>`. */
function platformArgs(): string[] {
  const scripts = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts as Record<string, string>;
  const [command, ...args] = (scripts.start ?? '').split(/\s+/);
  if (command !== 'node' || args.length === 0) throw new Error(`pnpm start is not "node ...": ${scripts.start}`);
  return args;
}

async function platform(dataDir: string): Promise<AtRest> {
  const names = ['catalog', 'subscription', 'usage'];
  const ports = await Promise.all(names.map(() => sparePort()));
  const env: Record<string, string> = { PLATFORM_DATA_DIR: dataDir };
  names.forEach((name, i) => {
    env[`${name.toUpperCase()}_PORT`] = String(ports[i]);
  });
  return measure({ args: platformArgs(), env, serving: (child) => healthServing(child, ports) });
}

const rows: { name: string; figures: AtRest; rssTargetMb?: number; startTargetMs?: number }[] = [];
const bare = await medianOf(() => measure({ args: [here('bare-node.ts')], env: {}, serving: firstLine }));
rows.push({ name: 'baseline: bare node, loads nothing', figures: bare });
const baseline = await medianOf(async () => {
  const port = await sparePort();
  return measure({
    args: [here('health-server.ts')],
    env: { HEALTH_PORT: String(port) },
    serving: (child) => healthServing(child, [port]),
  });
});
rows.push({ name: 'baseline: connect-node, health only', figures: baseline });
for (const name of ['catalog', 'subscription', 'usage']) {
  rows.push({
    name: `${name} alone, PostgreSQL + NATS`,
    figures: await service(name),
    rssTargetMb: SERVICE_RSS_TARGET_MB,
    startTargetMs: SERVICE_START_TARGET_MS,
  });
}
const dataRoot = mkdtempSync(join(tmpdir(), 'at-rest-'));
try {
  const dataDir = join(dataRoot, 'platform');
  rows.push({
    name: 'pnpm start, new data folder',
    figures: await platform(dataDir),
    rssTargetMb: PLATFORM_RSS_TARGET_MB,
  });
  rows.push({
    name: 'pnpm start, same folder again',
    figures: await medianOf(() => platform(dataDir)),
    rssTargetMb: PLATFORM_RSS_TARGET_MB,
  });
} finally {
  rmSync(dataRoot, { recursive: true, force: true });
}

const verdict = (value: number, target: number | undefined) =>
  target === undefined ? '' : value <= target ? `<= ${target} ok` : `> ${target} OVER`;
console.log(
  `at rest: spawn to serving, and resident memory after ${IDLE_MS / 1000} s idle (median of ${STARTS} starts; ` +
    'pnpm start on a new folder once); ratios to the connect-node baseline',
);
console.log(
  `${'process'.padEnd(38)} ${'start'.padStart(8)} ${'target'.padEnd(10)} ${'RSS'.padStart(8)} ${'target'.padEnd(10)} ${'peak'.padStart(8)}   ratio start / RSS`,
);
for (const { name, figures, rssTargetMb, startTargetMs } of rows) {
  console.log(
    `${name.padEnd(38)} ${`${figures.startMs.toFixed(0)} ms`.padStart(8)} ${verdict(figures.startMs, startTargetMs).padEnd(10)} ` +
      `${`${figures.rssMb.toFixed(0)} MB`.padStart(8)} ${verdict(figures.rssMb, rssTargetMb).padEnd(10)} ` +
      `${`${figures.peakMb.toFixed(0)} MB`.padStart(8)}   ${(figures.startMs / baseline.startMs).toFixed(2)} / ${(figures.rssMb / baseline.rssMb).toFixed(2)}`,
  );
}
