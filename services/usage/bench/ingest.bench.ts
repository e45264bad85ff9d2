// Sustained ingestion through the public gRPC API (batches of 1,000, deduplicated, durable when answered)
// against the raw PostgreSQL multi-row insert rate of the same machine, measured in the same run.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createMemoryBus } from '@billing/kit/memory-bus';
import pg from 'pg';
import { startUsageWithMeter } from './usage-with-meter.ts';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 400_000);
// Enough batches in flight to keep the service busy, as many producers together would: with 8, its event loop
// was busy two thirds of the time and the machine a fifth idle, so the figure measured the latency of a
// request, not the service's rate.
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 32);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

const bus = createMemoryBus();
const service = await startUsageWithMeter(bus, 'build_minutes', ['os']);

// Baseline: multi-row INSERT of 500 rows per statement on one connection, as STACK.md measured. It runs just
// before each ingestion run, so both meet the same state of the machine, after a checkpoint (dirty pages of the
// run before are written then, not during the baseline). A first, uncounted one warms up a fresh database (its
// first writes also create WAL files, which halves the rate for a while).
const baselineRows = 100_000;
const raw = new pg.Client({ connectionString: service.database.url });
await raw.connect();
await raw.query('create table bench_raw (customer text, id text, type text, time timestamptz, properties jsonb)');
async function rawInsertRate(): Promise<number> {
  await raw.query('truncate bench_raw');
  await raw.query('checkpoint');
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

/**
 * Waits until the delta publisher has folded the whole rollup log and the relay has published its messages, so
 * that what follows meets an idle service.
 */
async function drained(): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
    const { rows } = await raw.query<{ n: number }>(
      `select (select count(*) from usage_rollup_log) + (select count(*) from outbox_event where published_at is null)
                as n`,
    );
    if (Number(rows[0]?.n) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('the delta publisher and relay did not catch up within a minute');
}

interface Run {
  perSecond: number;
  /** CPU per event of the producer. */
  producerUs: number;
  /** The raw insert rate measured just before. */
  baseline: number;
  serviceUs: number;
  postgresUs: number | undefined;
}

// The producer runs in its own process, as producers do: the service's event loop is not also encoding.
async function produce(customers: number, idPrefix: string): Promise<Run> {
  const baseline = await rawInsertRate();
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
  // The publisher's work on the last batches counts in their CPU.
  await drained();
  const used = process.cpuUsage(cpu);
  const postgresAfter = postgresCpuMs();
  return {
    perSecond: Number(JSON.parse(output).perSecond),
    producerUs: Number(JSON.parse(output).cpuUs),
    baseline,
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

// RUNS rounds of producers that send a customer's events together (50 customers per batch of 1,000), then of the
// worst case: every event of a batch is another customer's (1,000 customers to publish per pass). Each run
// follows its own baseline and ends when the publisher has caught up: the machine is shared, and its speed
// drifts by a fifth within a minute, so each run is compared with the baseline next to it, and medians are taken.
const cases: { grouped: Run[]; worst: Run[] } = { grouped: [], worst: [] };
await rawInsertRate();
for (let r = 0; r < RUNS; r++) {
  cases.grouped.push(await produce(50, `g${r}`));
  cases.worst.push(await produce(1_000, `w${r}`));
}
await raw.end();
const all = [...cases.grouped, ...cases.worst];
const middle = (runs: readonly Run[]): Run => {
  const rate = median(runs.map((run) => run.perSecond));
  const run = runs.find((candidate) => candidate.perSecond === rate);
  if (!run) throw new Error('no run');
  return run;
};
const list = (values: readonly number[]) => values.map((v) => v.toFixed(0)).join(', ');
const line = (label: string, runs: readonly Run[]) => {
  const run = middle(runs);
  const split = `service ${run.serviceUs.toFixed(1)} µs${run.postgresUs === undefined ? '' : `, PostgreSQL ${run.postgresUs.toFixed(1)} µs`}, producer ${run.producerUs.toFixed(1)} µs`;
  console.log(
    `${label.padEnd(62)} ${run.perSecond.toFixed(0).padStart(8)} events/s   (runs: ${list(runs.map((r) => r.perSecond))}; CPU per event of the median run: ${split})`,
  );
};
const ratio = (runs: readonly Run[]) => median(runs.map((run) => run.perSecond / run.baseline));
console.log(
  `usage ingestion: ${EVENTS} events per run in batches of 1,000 from another process, ${IN_FLIGHT} in flight, median of ${RUNS} runs`,
);
console.log(
  `${'baseline: raw multi-row INSERT (500 rows, 1 connection)'.padEnd(62)} ${median(all.map((r) => r.baseline))
    .toFixed(0)
    .padStart(8)} rows/s   (before each run: ${list(all.map((r) => r.baseline))})`,
);
line('ingestion, 50 customers per batch (deduplicated, durable)', cases.grouped);
line('ingestion, 1,000 customers per batch (worst case)', cases.worst);
console.log(
  `ratio ingestion / baseline before it (median): ${ratio(cases.grouped).toFixed(2)} and ${ratio(cases.worst).toFixed(2)}   (target: >= 0.50, that is 50,000 events/s where raw inserts reach 100,000 rows/s)`,
);
await service.destroy();
await bus.close();
