// The producer of the ingestion benchmark, in its own process: sends BENCH_EVENTS events in batches of 1,000
// for BENCH_CUSTOMERS customers (ids prefixed BENCH_ID_PREFIX) to BENCH_URL with BENCH_IN_FLIGHT batches in
// flight, through a @grpc/grpc-js client, and prints its rate as JSON. The requests are encoded before the clock
// starts: producers run on other machines, and this one shares the service's two cores, so only what the
// service does is timed.

import {
  IngestEventsRequestSchema,
  IngestEventsResponseSchema,
  UsageService,
} from '@billing/proto/billing/usage/v1/usage_service_pb';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import * as grpc from '@grpc/grpc-js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 200_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 32);
const BATCH = 1_000;
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 1_000);
const PREFIX = process.env.BENCH_ID_PREFIX ?? 'ev';
const METHOD = `/${UsageService.typeName}/${UsageService.method.ingestEvents.name}`;

const time = timestampFromDate(new Date(Date.now() - 3_600_000));
const requests: Buffer[] = [];
for (let first = 0; first < EVENTS; first += BATCH) {
  const events = Array.from({ length: Math.min(BATCH, EVENTS - first) }, (_, j) => ({
    id: `${PREFIX}-${first + j}`,
    customerExternalId: `customer-${(first + j) % CUSTOMERS}`,
    type: 'build.finished',
    eventTime: time,
    properties: { minutes: 3, os: (first + j) % 2 ? 'linux' : 'mac' },
  }));
  requests.push(Buffer.from(toBinary(IngestEventsRequestSchema, create(IngestEventsRequestSchema, { events }))));
}

const client = new grpc.Client(new URL(process.env.BENCH_URL ?? '').host, grpc.credentials.createInsecure());
const send = (request: Buffer) =>
  new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(
      METHOD,
      (bytes: Buffer) => bytes,
      (bytes: Buffer) => bytes,
      request,
      (error, response) => (error || !response ? reject(error) : resolve(response)),
    );
  });

let next = 0;
const cpu = process.cpuUsage();
const started = performance.now();
await Promise.all(
  Array.from({ length: IN_FLIGHT }, async () => {
    for (let request = requests[next++]; request; request = requests[next++]) {
      const response = fromBinary(IngestEventsResponseSchema, await send(request));
      if (response.acceptedCount !== response.results.length) {
        throw new Error(`accepted ${response.acceptedCount} of ${response.results.length}`);
      }
    }
  }),
);
const used = process.cpuUsage(cpu);
process.stdout.write(
  JSON.stringify({
    perSecond: EVENTS / ((performance.now() - started) / 1000),
    cpuUs: (used.user + used.system) / EVENTS,
  }),
);
client.close();
