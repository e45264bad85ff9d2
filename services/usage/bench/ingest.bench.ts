// Sustained ingestion through the public gRPC API (batches of 1,000, deduplicated, durable when answered)
// against the raw PostgreSQL multi-row insert rate of the same machine, measured in the same run.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { MeterAggregation, MeterSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { startTestService } from '@billing/test/harness';
import { create } from '@bufbuild/protobuf';
import pg from 'pg';
import { saveMeter } from '../src/adapter/usage-store.ts';
import { usageService } from '../src/definition.ts';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 200_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 4);

const bus = createMemoryBus();
const service = await startTestService(usageService, { bus });
await service.context.db.transaction((em) =>
  saveMeter(
    em,
    create(MeterSchema, {
      key: 'build_minutes',
      name: 'Build minutes',
      eventType: 'build.finished',
      aggregation: MeterAggregation.SUM,
      valueProperty: 'minutes',
      groupBy: ['os'],
    }),
    new Date(),
  ),
);

// Baseline: multi-row INSERT of 500 rows per statement on one connection, as STACK.md measured.
const baselineRows = 100_000;
const raw = new pg.Client({ connectionString: service.database.url });
await raw.connect();
await raw.query('create table bench_raw (customer text, id text, type text, time timestamptz, properties jsonb)');
const startedRaw = performance.now();
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
const rawPerSecond = baselineRows / ((performance.now() - startedRaw) / 1000);
await raw.end();

// The producer runs in its own process, as producers do: the service's event loop is not also encoding.
async function produce(customers: number, idPrefix: string): Promise<number> {
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
  return Number(JSON.parse(output).perSecond);
}
// The worst case: every event of a batch is another customer's (1,000 rollup and delta rows per batch). Then
// producers that send a customer's events together (50 customers per batch of 1,000).
const worst = await produce(1_000, 'w');
const grouped = await produce(50, 'g');

console.log(
  `usage ingestion: ${EVENTS} events per run in batches of 1,000 from another process, ${IN_FLIGHT} in flight`,
);
console.log(
  `baseline: raw multi-row INSERT (500 rows, 1 connection)       ${rawPerSecond.toFixed(0).padStart(8)} rows/s`,
);
console.log(`ingestion, 1,000 customers per batch (deduplicated, durable)   ${worst.toFixed(0).padStart(8)} events/s`);
console.log(
  `ingestion, 50 customers per batch                              ${grouped.toFixed(0).padStart(8)} events/s`,
);
console.log(
  `ratio ingestion / baseline: ${(worst / rawPerSecond).toFixed(2)} and ${(grouped / rawPerSecond).toFixed(2)}   (target: >= 50,000 events/s)`,
);
await service.destroy();
await bus.close();
