// Sustained ingestion, in a process of its own as producers are: IngestEvents batches of BENCH_BATCH events (1,000
// unless set) for BENCH_CUSTOMERS customers to BENCH_URL over gRPC (@grpc/grpc-js), BENCH_IN_FLIGHT batches in
// flight, for BENCH_LOAD_MS; every event new (ids prefixed BENCH_ID_PREFIX). It prints what it sent as JSON. One
// batch is encoded before the clock starts and each request is a copy of it with the batch's number written over
// the placeholder of its ids, so the producer costs the shared cores little besides the client's own work.
import {
  IngestEventsRequestSchema,
  IngestEventsResponseSchema,
  UsageService,
} from '@billing/proto/billing/usage/v1/usage_service_pb';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import * as grpc from '@grpc/grpc-js';

const LOAD_MS = Number(process.env.BENCH_LOAD_MS ?? 30_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 32);
const BATCH = Number(process.env.BENCH_BATCH ?? 1_000);
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 50);
const PREFIX = process.env.BENCH_ID_PREFIX ?? 'load';
const METHOD = `/${UsageService.typeName}/${UsageService.method.ingestEvents.name}`;

// The batch number in every id: nine digits, written over this placeholder.
const PLACEHOLDER = '#########';
const time = timestampFromDate(new Date(Date.now() - 3_600_000));
const template = Buffer.from(
  toBinary(
    IngestEventsRequestSchema,
    create(IngestEventsRequestSchema, {
      events: Array.from({ length: BATCH }, (_, j) => ({
        id: `${PREFIX}-${PLACEHOLDER}-${j}`,
        customerExternalId: `customer-${j % CUSTOMERS}`,
        type: 'build.finished',
        eventTime: time,
        properties: { minutes: 3, os: j % 2 ? 'linux' : 'mac' },
      })),
    }),
  ),
);
const placeholders: number[] = [];
for (let at = template.indexOf(PLACEHOLDER); at >= 0; at = template.indexOf(PLACEHOLDER, at + 1)) {
  placeholders.push(at);
}

function request(batch: number): Buffer {
  const bytes = Buffer.from(template);
  const digits = String(batch).padStart(PLACEHOLDER.length, '0');
  for (const at of placeholders) bytes.write(digits, at, 'latin1');
  return bytes;
}

const client = new grpc.Client(new URL(process.env.BENCH_URL ?? '').host, grpc.credentials.createInsecure());
const send = (bytes: Buffer) =>
  new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(
      METHOD,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      (error, response) => (error || !response ? reject(error) : resolve(response)),
    );
  });

let next = 0;
let accepted = 0;
const started = performance.now();
const until = started + LOAD_MS;
await Promise.all(
  Array.from({ length: IN_FLIGHT }, async () => {
    while (performance.now() < until) {
      const response = fromBinary(IngestEventsResponseSchema, await send(request(next++)));
      if (response.acceptedCount !== BATCH) throw new Error(`accepted ${response.acceptedCount} of ${BATCH}`);
      accepted += response.acceptedCount;
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
process.stdout.write(JSON.stringify({ events: accepted, perSecond: accepted / seconds }));
client.close();
