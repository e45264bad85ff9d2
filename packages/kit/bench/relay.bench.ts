// How fast the outbox relay drains to JetStream: BENCH_RELAY_EVENTS events of 1,000 aggregates (as the usage
// service's delta publisher records them) published by the relay, against publishing 5,000 such messages one at
// a time, each awaiting its acknowledgement (the baseline: how the relay published before; it does no database
// work, which favours it), same NATS, same run. Every run of 1,000 rows holds 1,000 aggregates, the best case for
// the relay; rows of one aggregate close together publish as smaller runs.

import { defineEvent } from '@billing/proto/events/define';
import {
  createTestDatabase,
  deleteTestStreams,
  TEST_NATS_URL,
  testLogger,
  testSubjectPrefix,
} from '@billing/test/harness';
import { StringValueSchema } from '@bufbuild/protobuf/wkt';
import { openDatabase } from '../src/db.ts';
import { connectNatsBus } from '../src/nats-bus.ts';
import { createOutboxRelay, eventRecord, recordEvents } from '../src/outbox.ts';

const EVENTS = Number(process.env.BENCH_RELAY_EVENTS ?? 20_000);
const AGGREGATES = 1_000;
const noted = defineEvent('billing.bench.note.added', StringValueSchema);

const database = await createTestDatabase('relay_bench');
const db = await openDatabase({
  service: 'bench',
  url: database.url,
  entities: [],
  migrations: [],
  logger: testLogger,
});
await db.migrate();
const prefix = testSubjectPrefix('relaybench');
const bus = await connectNatsBus({
  servers: [TEST_NATS_URL],
  subjectPrefix: prefix,
  name: 'relay-bench',
  logger: testLogger,
});
await bus.ensureStream('bench');

const occurredTime = new Date();
const record = (from: number, count: number) =>
  db.transaction((em) =>
    recordEvents(
      em,
      Array.from({ length: count }, (_, i) =>
        eventRecord(noted, { value: `v${from + i}` }, { aggregateId: `agg-${(from + i) % AGGREGATES}`, occurredTime }),
      ),
    ),
  );

// Baseline: one message at a time, each acknowledged before the next.
const baselineEnvelopes = await record(0, 5_000);
let started = performance.now();
for (const envelope of baselineEnvelopes) {
  await bus.publish({ subject: noted.subject, payload: new Uint8Array(16), envelope });
}
const baselinePerSecond = baselineEnvelopes.length / ((performance.now() - started) / 1000);
await db.transaction((em) => em.execute('update outbox_event set published_at = now()'));

for (let from = 0; from < EVENTS; from += 1_000) await record(from, Math.min(1_000, EVENTS - from));
const relay = createOutboxRelay({ db, bus, logger: testLogger });
started = performance.now();
const left = await relay.flush(120_000);
const relayPerSecond = EVENTS / ((performance.now() - started) / 1000);
if (left !== 0) throw new Error(`${left} events were not published`);

console.log(`outbox relay to JetStream: ${EVENTS} events of ${AGGREGATES} aggregates`);
console.log(
  `baseline: publish one at a time, awaiting each acknowledgement  ${baselinePerSecond.toFixed(0).padStart(7)} events/s`,
);
console.log(
  `relay (batches of 1,000, aggregates in flight together)       ${relayPerSecond.toFixed(0).padStart(7)} events/s`,
);
console.log(`ratio relay / baseline: ${(relayPerSecond / baselinePerSecond).toFixed(1)}x`);
await bus.close();
await deleteTestStreams(prefix);
await db.close();
await database.drop();
