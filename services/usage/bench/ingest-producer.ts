// The producer of the ingestion benchmark, in its own process: sends BENCH_EVENTS events in batches of 1,000
// for BENCH_CUSTOMERS customers (ids prefixed BENCH_ID_PREFIX) to BENCH_URL with BENCH_IN_FLIGHT batches in
// flight, and prints its rate as JSON.
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 200_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 4);
const BATCH = 1_000;
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 1_000);
const PREFIX = process.env.BENCH_ID_PREFIX ?? 'ev';
const client = createClient(UsageService, createGrpcTransport({ baseUrl: process.env.BENCH_URL ?? '' }));
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
        id: `${PREFIX}-${first + j}`,
        customerExternalId: `customer-${(first + j) % CUSTOMERS}`,
        type: 'build.finished',
        eventTime: time,
        properties: { minutes: 3, os: (first + j) % 2 ? 'linux' : 'mac' },
      }));
      const res = await client.ingestEvents({ events });
      if (res.acceptedCount !== BATCH) throw new Error(`accepted ${res.acceptedCount} of ${BATCH}`);
    }
  }),
);
process.stdout.write(JSON.stringify({ perSecond: EVENTS / ((performance.now() - started) / 1000) }));
