// A service at rest and under load. At rest: how long each process takes from spawn to serving, and how much it
// holds resident once it has been idle for BENCH_IDLE_MS (5 s unless set). Each service runs alone as its own
// process, as deployed (with the NODE_OPTIONS of its manifest), on a fresh PostgreSQL database of its own and NATS;
// `pnpm start` runs as its package script says, every service in one process on its embedded database, first on a
// fresh data folder (the run that creates the database) and then again on the same folder. Serving is the first
// SERVING answer of every health check the process serves; resident memory is VmRSS of /proc/<pid>/status, and
// VmHWM its peak. The baselines, measured in the same run: a Node process that loads nothing, and one that only
// serves the health check from a bare connect-node server.
//
// Under load, each service again as its own process: the usage service under sustained ingestion (BENCH_LOAD_MS,
// 30 s unless set, from a producer process: ingestion-load.ts), and each service after a hostile burst
// (BENCH_HOSTILE_REQUESTS, 2,500 unless set, of the large shapes of hostile-shapes.ts at the kit's former 8 MiB
// limit and at its limit now: hostile-burst.ts). For each: the peak (VmHWM) and the resident memory once it has been
// idle for BENCH_LOAD_IDLE_MS (15 s unless set) after the load, against the 256 MB its manifest's limit allows and
// against the connect-node baseline at rest. SERVICE_NODE_OPTIONS replaces the manifests' NODE_OPTIONS (empty for
// none), to compare.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_REQUEST_LIMITS } from '@billing/kit/request-limits';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { sparePort } from '@billing/test/harness';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import {
  cpuMsOf,
  healthServing,
  type Resident,
  root,
  type ServiceProcess,
  serviceNodeOptions,
  serviceSetting,
  spawnNode,
  startServiceProcess,
} from './service-process.ts';

const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 5_000);
const STARTS = Number(process.env.BENCH_STARTS ?? 3);
const LOAD_MS = Number(process.env.BENCH_LOAD_MS ?? 30_000);
const LOAD_IDLE_MS = Number(process.env.BENCH_LOAD_IDLE_MS ?? 15_000);
const HOSTILE_REQUESTS = Number(process.env.BENCH_HOSTILE_REQUESTS ?? 2_500);
const SERVICE_START_TARGET_MS = 1_000;
const SERVICE_RSS_TARGET_MB = 150;
const PLATFORM_RSS_TARGET_MB = 400;
/** The memory limit of each service's container in deploy/ (256 Mi). */
const SERVICE_LIMIT_MB = 256;
/** The kit's limit of a request message before it had one of its own (server.ts): hostile shapes are sent at it. */
const FORMER_READ_MAX_BYTES = 8 * 1024 * 1024;
const SERVICES = ['catalog', 'subscription', 'usage'];

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/** One measured process at rest. */
interface AtRest extends Resident {
  /** From spawn to serving, in ms. */
  startMs: number;
}

/** How to run one process and know it serves. */
interface Run {
  args: string[];
  env: Record<string, string>;
  /** Resolves once the process serves. */
  serving(child: ChildProcess): Promise<void>;
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
  const spawned = spawnNode(run.args, run.env);
  try {
    await run.serving(spawned.child);
    const startMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, IDLE_MS));
    return { startMs, ...spawned.resident() };
  } catch (err) {
    throw new Error(`${run.args.join(' ')}: ${(err as Error).message}\n${spawned.stderr()}`);
  } finally {
    await spawned.stop();
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

async function serviceAtRest(name: string): Promise<AtRest> {
  const setting = await serviceSetting(name, 'at_rest');
  try {
    return await medianOf(async () => {
      const service = await startServiceProcess(setting);
      try {
        await new Promise((r) => setTimeout(r, IDLE_MS));
        return { startMs: service.startMs, ...service.resident() };
      } finally {
        await service.stop();
      }
    });
  } finally {
    await setting.drop();
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
  const ports = await Promise.all(SERVICES.map(() => sparePort()));
  const env: Record<string, string> = { PLATFORM_DATA_DIR: dataDir };
  SERVICES.forEach((name, i) => {
    env[`${name.toUpperCase()}_PORT`] = String(ports[i]);
  });
  return measure({ args: platformArgs(), env, serving: (child) => healthServing(child, ports) });
}

/** A service under load: what the load did, the peak, and what it holds once idle again. */
interface UnderLoad {
  name: string;
  /** What the load was and how it went, in words. */
  work: string;
  peakMb: number;
  /** Resident after LOAD_IDLE_MS idle. */
  endMb: number;
}

/** Runs `script` (a load process) against `service` with `env`, and returns what it printed as JSON. */
async function drive(service: ServiceProcess, script: string, env: Record<string, string>): Promise<unknown> {
  const load = spawn(process.execPath, [here(script)], {
    cwd: root,
    env: { ...process.env, NODE_OPTIONS: '', BENCH_URL: service.baseUrl, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  load.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const [code] = (await once(load, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${script} failed (${code})\n${service.stderr()}`);
  return JSON.parse(output);
}

/** The peak, and the resident memory after LOAD_IDLE_MS idle, of `service`, which it stops. */
async function afterLoad(service: ServiceProcess): Promise<{ peakMb: number; endMb: number }> {
  try {
    const { peakMb } = service.resident();
    await new Promise((r) => setTimeout(r, LOAD_IDLE_MS));
    return { peakMb, endMb: service.resident().rssMb };
  } finally {
    await service.stop();
  }
}

/** Waits until the usage service at `baseUrl` reads the meter `key` (which it learns from the catalog's events). */
async function meterKnown(baseUrl: string, key: string): Promise<void> {
  const usage = createClient(UsageService, createGrpcTransport({ baseUrl }));
  const now = Date.now();
  const period = { startTime: timestampFromDate(new Date(now - 3_600_000)), endTime: timestampFromDate(new Date(now)) };
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
    const known = await usage.getPeriodUsage({ customerExternalId: 'c', meterKey: key, period }).then(
      () => true,
      () => false,
    );
    if (known) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the usage service never learned the meter ${key}`);
}

/**
 * The usage service under sustained ingestion, as deployed: the catalog (a process of its own, on the same NATS
 * prefix) creates the build minutes meter, the usage service learns it from the catalog's events, the catalog
 * stops, and the producer sends new events for LOAD_MS.
 */
async function underIngestion(): Promise<UnderLoad> {
  const usage = await serviceSetting('usage', 'load');
  const catalog = await serviceSetting('catalog', 'load', usage.prefix);
  try {
    const catalogProcess = await startServiceProcess(catalog);
    const service = await startServiceProcess(usage);
    try {
      const api = createClient(CatalogService, createGrpcTransport({ baseUrl: catalogProcess.baseUrl }));
      await api.createMeter({
        requestId: 'load-meter',
        meter: {
          key: 'build_minutes',
          name: 'Build minutes',
          eventType: 'build.finished',
          aggregation: MeterAggregation.SUM,
          valueProperty: 'minutes',
          groupBy: ['os'],
        },
      });
      await meterKnown(service.baseUrl, 'build_minutes');
    } finally {
      await catalogProcess.stop();
    }
    const cpuBefore = cpuMsOf(service.pid);
    const sent = (await drive(service, 'ingestion-load.ts', { BENCH_LOAD_MS: String(LOAD_MS) })) as {
      events: number;
      perSecond: number;
    };
    const cpuUsPerEvent = ((cpuMsOf(service.pid) - cpuBefore) * 1000) / sent.events;
    const work = `${Math.round(sent.perSecond).toLocaleString('en')} events/s, ${cpuUsPerEvent.toFixed(1)} µs CPU/event`;
    return { name: `usage, ingestion for ${LOAD_MS / 1000} s`, work, ...(await afterLoad(service)) };
  } finally {
    await catalog.drop();
    await usage.drop();
  }
}

/** Service `name` as deployed after HOSTILE_REQUESTS hostile requests. */
async function afterHostileBurst(name: string): Promise<UnderLoad> {
  const setting = await serviceSetting(name, 'hostile');
  try {
    const service = await startServiceProcess(setting);
    const sizes = [...new Set([FORMER_READ_MAX_BYTES, DEFAULT_REQUEST_LIMITS.readMaxBytes])];
    const started = performance.now();
    const burst = (await drive(service, 'hostile-burst.ts', {
      BENCH_SERVICE: name,
      BENCH_HOSTILE_REQUESTS: String(HOSTILE_REQUESTS),
      BENCH_HOSTILE_BYTES: sizes.join(','),
    })) as { codes: Record<string, number> };
    const seconds = (performance.now() - started) / 1000;
    const codes = Object.entries(burst.codes)
      .sort(([, a], [, b]) => b - a)
      .map(([code, n]) => `${n} ${code}`)
      .join(', ');
    return {
      name: `${name}, ${HOSTILE_REQUESTS} hostile requests`,
      work: `${seconds.toFixed(0)} s: ${codes}`,
      ...(await afterLoad(service)),
    };
  } finally {
    await setting.drop();
  }
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
for (const name of SERVICES) {
  rows.push({
    name: `${name} alone, PostgreSQL + NATS`,
    figures: await serviceAtRest(name),
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
const loaded: UnderLoad[] = [await underIngestion()];
for (const name of SERVICES) loaded.push(await afterHostileBurst(name));

const verdict = (value: number, target: number | undefined) =>
  target === undefined ? '' : value <= target ? `<= ${target} ok` : `> ${target} OVER`;
const options = SERVICES.map((name) => `${name}: ${serviceNodeOptions(name) || '(none)'}`).join('; ');
console.log(
  `at rest: spawn to serving, and resident memory after ${IDLE_MS / 1000} s idle (median of ${STARTS} starts; ` +
    'pnpm start on a new folder once); ratios to the connect-node baseline',
);
console.log(`NODE_OPTIONS of the services: ${options}`);
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
console.log(
  `\nunder load: peak resident memory (VmHWM) and resident memory after ${LOAD_IDLE_MS / 1000} s idle, each service ` +
    `as its own process; target <= ${SERVICE_LIMIT_MB} MB (the manifests' limit); ratios to it and to the ` +
    'connect-node baseline at rest',
);
console.log(
  `${'process'.padEnd(38)} ${'peak'.padStart(8)} ${'target'.padEnd(10)} ${'end'.padStart(8)}   ${'ratio peak / limit, / baseline'.padEnd(32)} load`,
);
for (const { name, work, peakMb, endMb } of loaded) {
  const ratios = `${(peakMb / SERVICE_LIMIT_MB).toFixed(2)}, ${(peakMb / baseline.rssMb).toFixed(2)}`;
  console.log(
    `${name.padEnd(38)} ${`${peakMb.toFixed(0)} MB`.padStart(8)} ${verdict(peakMb, SERVICE_LIMIT_MB).padEnd(10)} ` +
      `${`${endMb.toFixed(0)} MB`.padStart(8)}   ${ratios.padEnd(32)} ${work}`,
  );
}
