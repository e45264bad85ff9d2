// A billing-period query over millions of events of one customer answers from the hour rollups, the minute
// rollups of the two partial hours at the period's edges and the raw events of the partial minutes left,
// against a full scan of the same raw events (the baseline), in the same run. BENCH_PERIOD_EVENTS sets the size (default 10 million).
import { createMemoryBus } from '@billing/kit/memory-bus';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { startUsageWithMeter } from './usage-with-meter.ts';

const EVENTS = Number(process.env.BENCH_PERIOD_EVENTS ?? 10_000_000);
const bus = createMemoryBus();
const service = await startUsageWithMeter(bus, 'minutes');
const now = new Date();
const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
const end = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
const spanSeconds = (end.getTime() - start.getTime()) / 1000;

const db = new pg.Client({ connectionString: service.database.url });
await db.connect();
const loadStarted = performance.now();
// Raw events spread evenly over last month, minutes 1..10; the rollups built from them as ingestion would.
await db.query(
  `insert into usage_event (customer_external_id, event_id, event_type, event_time, properties, ingested_at)
   select 'big', 'e' || g, 'build.finished', $1::timestamptz + (g % $2) * interval '1 second',
          jsonb_build_object('minutes', g % 10 + 1), now()
     from generate_series(1, $3::bigint) g`,
  [start, spanSeconds, EVENTS],
);
await db.query(
  `insert into usage_rollup (meter_key, customer_external_id, group_key, hour, aggregation, value, event_count)
   select 'minutes', 'big', '[]', date_trunc('hour', event_time), 'sum', sum((properties->>'minutes')::numeric), count(*)
     from usage_event where customer_external_id = 'big' group by date_trunc('hour', event_time)`,
);
await db.query(
  `insert into usage_rollup_minute (meter_key, customer_external_id, group_key, minute, aggregation, value, event_count)
   select 'minutes', 'big', '[]', date_trunc('minute', event_time), 'sum', sum((properties->>'minutes')::numeric), count(*)
     from usage_event where customer_external_id = 'big' group by date_trunc('minute', event_time)`,
);
await db.query('analyze usage_event');
await db.query('analyze usage_rollup_minute');
await db.query('analyze usage_rollup');
const loadSeconds = (performance.now() - loadStarted) / 1000;

// The period starts and ends inside hours and minutes, as anniversary periods may.
const from = new Date(start.getTime() + 17 * 60_000 + 12_000);
const to = new Date(end.getTime() - 23 * 60_000 - 7_000);
const scanStarted = performance.now();
const scan = await db.query<{ total: string }>(
  `select sum((properties->>'minutes')::numeric)::text as total from usage_event
    where customer_external_id = 'big' and event_type = 'build.finished' and event_time >= $1 and event_time < $2`,
  [from, to],
);
const scanMs = performance.now() - scanStarted;
await db.end();

const client = createClient(UsageService, createGrpcTransport({ baseUrl: service.baseUrl }));
const request = {
  customerExternalId: 'big',
  meterKey: 'minutes',
  period: { startTime: timestampFromDate(from), endTime: timestampFromDate(to) },
};
const first = await client.getPeriodUsage(request);
if (first.value !== scan.rows[0]?.total)
  throw new Error(`rollup answer ${first.value} differs from the scan ${scan.rows[0]?.total}`);
const latencies: number[] = [];
for (let i = 0; i < 50; i++) {
  const t = performance.now();
  await client.getPeriodUsage(request);
  latencies.push(performance.now() - t);
}
latencies.sort((a, b) => a - b);
const median = latencies[Math.floor(latencies.length / 2)] ?? 0;
const p99 = latencies[latencies.length - 1] ?? 0;

console.log(
  `period usage over ${EVENTS.toLocaleString('en')} events of one customer (loaded in ${loadSeconds.toFixed(0)} s), value ${first.value}`,
);
console.log(`baseline: SQL scan of the raw events        ${scanMs.toFixed(1).padStart(9)} ms`);
console.log(
  `GetPeriodUsage over gRPC (rollups + edges)  ${median.toFixed(1).padStart(9)} ms median, ${p99.toFixed(1)} ms max of 50`,
);
console.log(`ratio scan / GetPeriodUsage: ${(scanMs / median).toFixed(0)}x faster`);
await service.destroy();
await bus.close();
