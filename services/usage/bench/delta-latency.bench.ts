// Event-to-delta latency over real NATS JetStream: a producer ingests a steady stream of small batches for
// 100 customers; a consumer of `billing.usage.meter.delta` notes when each batch's usage first shows in a
// published value. The baseline is the bare JetStream publish-to-delivery latency measured in the same run.
// The platform's target is event-to-balance p99 <= 1 s, of which this is the usage service's share.
import { connectNatsBus } from '@billing/kit/nats-bus';
import { MeterUsageDeltaSchema } from '@billing/proto/billing/usage/events/v1/events_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { deleteTestStreams, TEST_NATS_URL, testLogger, testSubjectPrefix } from '@billing/test/harness';
import { fromBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { startUsageWithMeter } from './usage-with-meter.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
// A batch every 20 ms: 5,000 events/s by default. BENCH_BATCH=1000 BENCH_CUSTOMERS=1000 measures the worst case of
// the ingestion benchmark at its rate (every event another customer's), as far as a producer sharing the service's
// process and cores can send it.
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 100);
const BATCH = Number(process.env.BENCH_BATCH ?? 100);
const BATCH_INTERVAL_MS = 20;

const prefix = testSubjectPrefix('bench-latency');
const bus = await connectNatsBus({
  servers: [TEST_NATS_URL],
  subjectPrefix: prefix,
  name: 'usage',
  logger: testLogger,
});
const service = await startUsageWithMeter(bus, 'build_minutes');

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

// Baseline: publish-to-delivery of bare messages through the same JetStream.
await bus.ensureStream('benchbase');
const sentAt = new Map<string, number>();
const baseline: number[] = [];
const baseSub = await bus.consume({
  stream: 'benchbase',
  durable: 'bench-base',
  subjects: ['billing.benchbase.>'],
  async handle(delivery) {
    const t = sentAt.get(delivery.message.envelope.eventId);
    if (t !== undefined) baseline.push(performance.now() - t);
  },
});
for (let i = 0; i < 500; i++) {
  const eventId = `base-${i}`;
  sentAt.set(eventId, performance.now());
  await bus.publish({
    subject: 'billing.benchbase.probe.sent',
    envelope: {
      eventId,
      eventType: 'probe.sent.v1',
      schema: 'x',
      aggregateId: 'p',
      aggregateSeq: i + 1,
      occurredTime: new Date(),
      producer: 'benchbase',
    },
    payload: new Uint8Array(),
  });
  await new Promise((r) => setTimeout(r, 2));
}
while (baseline.length < 500) await new Promise((r) => setTimeout(r, 20));
await baseSub.stop();

// Per customer: the cumulative value after each acknowledged batch, and when it was acknowledged.
const waiting = new Map<string, { value: number; ackedAt: number }[]>();
const latencies: number[] = [];
const deltaSub = await bus.consume({
  stream: 'usage',
  durable: 'bench-deltas',
  subjects: ['billing.usage.meter.delta'],
  async handle(delivery) {
    const now = performance.now();
    const message = fromBinary(MeterUsageDeltaSchema, delivery.message.payload);
    const value = Number(message.deltas[0]?.value ?? 0);
    const queue = waiting.get(message.customerExternalId) ?? [];
    while (queue.length > 0 && (queue[0]?.value ?? Infinity) <= value) {
      const entry = queue.shift();
      if (entry) latencies.push(now - entry.ackedAt);
    }
  },
});

const client = createClient(UsageService, createGrpcTransport({ baseUrl: service.baseUrl }));
const totals = new Map<string, number>();
const time = timestampFromDate(new Date());
const end = performance.now() + SECONDS * 1000;
let sent = 0;
const inFlight: Promise<void>[] = [];
while (performance.now() < end) {
  const first = sent;
  sent += BATCH;
  const events = Array.from({ length: BATCH }, (_, j) => ({
    id: `lat-${first + j}`,
    customerExternalId: `c-${(first + j) % CUSTOMERS}`,
    type: 'build.finished',
    eventTime: time,
    properties: { minutes: 1 },
  }));
  inFlight.push(
    client.ingestEvents({ events }).then(() => {
      const ackedAt = performance.now();
      for (const e of events) totals.set(e.customerExternalId, (totals.get(e.customerExternalId) ?? 0) + 1);
      for (const customer of new Set(events.map((e) => e.customerExternalId))) {
        const queue = waiting.get(customer) ?? [];
        queue.push({ value: totals.get(customer) ?? 0, ackedAt });
        waiting.set(customer, queue);
      }
    }),
  );
  await new Promise((r) => setTimeout(r, BATCH_INTERVAL_MS));
}
await Promise.all(inFlight);
const drainUntil = performance.now() + 10_000;
while ([...waiting.values()].some((q) => q.length > 0) && performance.now() < drainUntil) {
  await new Promise((r) => setTimeout(r, 50));
}
await deltaSub.stop();

console.log(
  `usage event-to-delta latency: ${sent} events in ${SECONDS} s (${(sent / SECONDS).toFixed(0)} events/s), ${CUSTOMERS} customers`,
);
console.log(
  `baseline: JetStream publish-to-delivery   p50 ${percentile(baseline, 50).toFixed(1).padStart(7)} ms   p99 ${percentile(baseline, 99).toFixed(1).padStart(7)} ms`,
);
console.log(
  `ingest ack to published delta            p50 ${percentile(latencies, 50).toFixed(1).padStart(7)} ms   p99 ${percentile(latencies, 99).toFixed(1).padStart(7)} ms   (${latencies.length} batch-customer samples)`,
);
console.log(
  `ratio p99 / baseline p99: ${(percentile(latencies, 99) / percentile(baseline, 99)).toFixed(1)}   (target: event-to-balance p99 <= 1,000 ms)`,
);
await service.destroy();
await bus.close();
await deleteTestStreams(prefix);
