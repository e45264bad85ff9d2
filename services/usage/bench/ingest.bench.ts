// Sustained ingestion through the public gRPC API (batches of 1,000, deduplicated, durable when answered)
// against the raw PostgreSQL multi-row insert rate of the same machine, measured in the same run.
import { createMemoryBus } from '@billing/kit/memory-bus';
import { MeterAggregation, MeterSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { startTestService } from '@billing/test/harness';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { saveMeter } from '../src/adapter/usage-store.ts';
import { usageService } from '../src/definition.ts';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 200_000);
const BATCH = 1_000;
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

const client = createClient(UsageService, createGrpcTransport({ baseUrl: service.baseUrl }));
const time = timestampFromDate(new Date(Date.now() - 3_600_000));
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: IN_FLIGHT }, async () => {
    for (;;) {
      const first = next;
      next += BATCH;
      if (first >= EVENTS) return;
      const events = Array.from({ length: BATCH }, (_, j) => ({
        id: `ev-${first + j}`,
        customerExternalId: `customer-${(first + j) % 1000}`,
        type: 'build.finished',
        eventTime: time,
        properties: { minutes: 3, os: (first + j) % 2 ? 'linux' : 'mac' },
      }));
      const res = await client.ingestEvents({ events });
      if (res.acceptedCount !== BATCH) throw new Error(`accepted ${res.acceptedCount} of ${BATCH}`);
    }
  }),
);
const perSecond = EVENTS / ((performance.now() - started) / 1000);

console.log(`usage ingestion: ${EVENTS} events in batches of ${BATCH}, ${IN_FLIGHT} batches in flight`);
console.log(`baseline: raw multi-row INSERT (500 rows, 1 connection)   ${rawPerSecond.toFixed(0).padStart(8)} rows/s`);
console.log(`ingestion through gRPC (deduplicated, durable, rolled up)  ${perSecond.toFixed(0).padStart(8)} events/s`);
console.log(`ratio ingestion / baseline: ${(perSecond / rawPerSecond).toFixed(2)}   (target: >= 50,000 events/s)`);
await service.destroy();
await bus.close();
