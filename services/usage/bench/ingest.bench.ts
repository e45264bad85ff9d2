// Sustained ingestion through the public gRPC API (batches of 1,000, deduplicated, durable when answered)
// against the raw PostgreSQL multi-row insert rate of the same machine, measured in the same run.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createMemoryBus } from '@billing/kit/memory-bus';
import pg from 'pg';
import { startUsageWithMeter } from './usage-with-meter.ts';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 200_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 8);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

const bus = createMemoryBus();
const service = await startUsageWithMeter(bus, 'build_minutes', ['os']);

// Baseline: multi-row INSERT of 500 rows per statement on one connection, as STACK.md measured. It runs before
// each ingestion run, so both meet the same state of the machine (a fresh database's first writes also create
// WAL files, which halves the rate for a while).
const baselineRows = 100_000;
const raw = new pg.Client({ connectionString: service.database.url });
await raw.connect();
await raw.query('create table bench_raw (customer text, id text, type text, time timestamptz, properties jsonb)');
async function rawInsertRate(): Promise<number> {
  await raw.query('truncate bench_raw');
  const started = performance.now();
  for (let i = 0; i < baselineRows; i += 500) {
    const values: string[] = [];
    const params: unknown[] = [];
    for (let j = 0; j < 500; j++) {
      const k = params.length;
      values.push(`($${k + 1}, $${k + 2}, 'build.finished', now(), $${k + 3})`);
      params.push(`customer-${(i + j) % 1000}`, `raw-${i + j}`, JSON.stringify({ minutes: 3, os: 'linux' }));
    }
    await raw.query(`insert into bench_raw values ${values.join(',')}`, params);
  }
  return baselineRows / ((performance.now() - started) / 1000);
}

// Where the CPU goes: the service runs in this process; PostgreSQL's processes are read from /proc when it runs
// on this machine (the backends that ended count in the postmaster's children times). Every PostgreSQL process
// of the machine counts, so run it on a quiet one; Linux counts 100 ticks per second.
function postgresCpuMs(): number | undefined {
  try {
    let ticks = 0;
    for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.includes('(postgres)')) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
    }
    return ticks === 0 ? undefined : ticks * 10;
  } catch {
    return undefined;
  }
}

interface Run {
  perSecond: number;
  serviceUs: number;
  postgresUs: number | undefined;
}

// The producer runs in its own process, as producers do: the service's event loop is not also encoding.
async function produce(customers: number, idPrefix: string): Promise<Run> {
  const cpu = process.cpuUsage();
  const postgres = postgresCpuMs();
  const producer = spawn(process.execPath, [fileURLToPath(new URL('./ingest-producer.ts', import.meta.url))], {
    env: {
      ...process.env,
      BENCH_URL: service.baseUrl,
      BENCH_EVENTS: String(EVENTS),
      BENCH_IN_FLIGHT: String(IN_FLIGHT),
      BENCH_CUSTOMERS: String(customers),
      BENCH_ID_PREFIX: idPrefix,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  producer.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const [code] = (await once(producer, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`the producer failed (${code})`);
  const used = process.cpuUsage(cpu);
  const postgresAfter = postgresCpuMs();
  return {
    perSecond: Number(JSON.parse(output).perSecond),
    serviceUs: (used.user + used.system) / EVENTS,
    postgresUs:
      postgres === undefined || postgresAfter === undefined ? undefined : ((postgresAfter - postgres) * 1000) / EVENTS,
  };
}

/** The median of `values`. */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

// RUNS rounds of the baseline, then producers that send a customer's events together (50 customers per batch of
// 1,000), then the worst case: every event of a batch is another customer's (1,000 customers to publish per
// pass). Medians are taken per case (the machine is shared: single runs vary by about a tenth).
const baselines: number[] = [];
const cases: { grouped: Run[]; worst: Run[] } = { grouped: [], worst: [] };
for (let r = 0; r < RUNS; r++) {
  baselines.push(await rawInsertRate());
  cases.grouped.push(await produce(50, `g${r}`));
  cases.worst.push(await produce(1_000, `w${r}`));
}
await raw.end();
const rawPerSecond = median(baselines);
const middle = (runs: readonly Run[]): Run => {
  const rate = median(runs.map((run) => run.perSecond));
  const run = runs.find((candidate) => candidate.perSecond === rate);
  if (!run) throw new Error('no run');
  return run;
};
const grouped = middle(cases.grouped);
const worst = middle(cases.worst);

const line = (label: string, run: Run, runs: readonly Run[]) => {
  const split = `service ${run.serviceUs.toFixed(1)} µs${run.postgresUs === undefined ? '' : `, PostgreSQL ${run.postgresUs.toFixed(1)} µs`}`;
  console.log(
    `${label.padEnd(62)} ${run.perSecond.toFixed(0).padStart(8)} events/s   (CPU per event: ${split}; runs: ${runs.map((r) => r.perSecond.toFixed(0)).join(', ')})`,
  );
};
console.log(
  `usage ingestion: ${EVENTS} events per run in batches of 1,000 from another process, ${IN_FLIGHT} in flight, median of ${RUNS} runs`,
);
console.log(
  `${'baseline: raw multi-row INSERT (500 rows, 1 connection)'.padEnd(62)} ${rawPerSecond.toFixed(0).padStart(8)} rows/s   (runs: ${baselines.map((b) => b.toFixed(0)).join(', ')})`,
);
line('ingestion, 50 customers per batch (deduplicated, durable)', grouped, cases.grouped);
line('ingestion, 1,000 customers per batch (worst case)', worst, cases.worst);
console.log(
  `ratio ingestion / baseline: ${(grouped.perSecond / rawPerSecond).toFixed(2)} and ${(worst.perSecond / rawPerSecond).toFixed(2)}   (target: >= 0.50, that is 50,000 events/s where raw inserts reach 100,000 rows/s)`,
);
await service.destroy();
await bus.close();
