// The outbox and idempotent consumers against real PostgreSQL and NATS JetStream.

import { defineEvent } from '@billing/proto/events/define';
import {
  createTestDatabase,
  deleteTestStreams,
  TEST_NATS_URL,
  type TestDatabase,
  testLogger,
  testSubjectPrefix,
  waitFor,
} from '@billing/test/harness';
import { create, toBinary } from '@bufbuild/protobuf';
import { BytesValueSchema, StringValueSchema } from '@bufbuild/protobuf/wkt';
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import pg from 'pg';
import type { EventBus, Subscription } from '../src/bus.ts';
import { listParkedEvents, on, replayParkedEvent, startConsumer } from '../src/consumer.ts';
import { type Database, type Em, openDatabase } from '../src/db.ts';
import type { BusMessage } from '../src/events.ts';
import { newUlid } from '../src/ids.ts';
import { createMemoryBus } from '../src/memory-bus.ts';
import { connectNatsBus } from '../src/nats-bus.ts';
import { createOutboxRelay, eventRecord, pruneOutbox, recordEvent, recordEvents } from '../src/outbox.ts';
import { withTraceparent } from '../src/trace.ts';
import { eventually } from './bus-contract.ts';

const noted = defineEvent('billing.alpha.note.added', StringValueSchema);

describe('outbox and consumers', () => {
  let database: TestDatabase;
  let db: Database;
  let bus: EventBus;
  let prefix: string;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    database = await createTestDatabase('outbox');
    db = await openDatabase({ service: 'alpha', url: database.url, entities: [], migrations: [], logger: testLogger });
    await db.migrate();
    prefix = testSubjectPrefix('outbox');
    bus = await connectNatsBus({
      servers: [TEST_NATS_URL],
      subjectPrefix: prefix,
      name: 'outbox-test',
      logger: testLogger,
    });
    await bus.ensureStream('alpha');
  });

  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  afterAll(async () => {
    await bus.close();
    await deleteTestStreams(prefix);
    await db.close();
    await database.drop();
  });

  const record = (aggregateId: string, value: string) =>
    db.transaction((em) =>
      recordEvent(em, noted, { value }, { aggregateId, occurredTime: new Date('2026-01-15T00:00:00Z') }),
    );

  const consume = async (
    name: string,
    seen: string[],
    options: { fail?: (value: string) => boolean; maxAttempts?: number } = {},
  ) => {
    const handlers = [
      on(noted, async (em, event) => {
        if (options.fail?.(event.payload.value)) throw new Error(`cannot take ${event.payload.value}`);
        await em.execute('select 1');
        seen.push(`${event.envelope.aggregateId}:${event.envelope.aggregateSeq}:${event.payload.value}`);
      }),
    ];
    const subscription: Subscription = await startConsumer({
      name,
      stream: 'alpha',
      handlers,
      db,
      bus,
      logger: testLogger,
      maxAttempts: options.maxAttempts ?? 3,
      retryDelayMs: 10,
    });
    stops.push(() => subscription.stop());
    return handlers;
  };

  const stamp = (sql: string) => db.transaction((em) => em.execute(sql));
  const pruneRows = async () =>
    (
      await db
        .fork()
        .execute<{ aggregate_id: string; aggregate_seq: string }[]>(
          "select aggregate_id, aggregate_seq from outbox_event where aggregate_id like 'prune-%' order by 1, 2",
        )
    ).map((r) => `${r.aggregate_id}:${r.aggregate_seq}`);

  test('service connections run without JIT compilation', async () => {
    const [row] = await db.transaction((em) => em.execute<{ jit: string }[]>('show jit'));
    expect(row?.jit).toBe('off');
  });

  test("pruning deletes rows published before the retention, but never an aggregate's newest or an unpublished one", async () => {
    try {
      for (const [aggregate, count] of [
        ['prune-a', 3],
        ['prune-b', 1],
        ['prune-c', 2],
        ['prune-d', 2],
        ['prune-e', 2],
      ] as const) {
        for (let i = 0; i < count; i++) await record(aggregate, `${aggregate}-${i + 1}`);
      }
      await stamp(
        `update outbox_event set published_at = now() - interval '2 hours'
          where aggregate_id in ('prune-a', 'prune-b') or (aggregate_id in ('prune-c', 'prune-e') and aggregate_seq = 1)`,
      );
      await stamp(
        "update outbox_event set published_at = now() - interval '10 minutes' where aggregate_id = 'prune-d'",
      );
      // prune-e's first row is unpublished (an operator asked for it again), its second published long ago.
      await stamp(
        `update outbox_event set published_at = case aggregate_seq when 1 then null else now() - interval '2 hours' end
          where aggregate_id = 'prune-e'`,
      );

      expect(await pruneOutbox(db, 3_600_000)).toBe(3);
      expect(await pruneRows()).toEqual([
        'prune-a:3',
        'prune-b:1',
        'prune-c:2',
        'prune-d:1',
        'prune-d:2',
        'prune-e:1',
        'prune-e:2',
      ]);
      // The newest row kept, an aggregate's numbering goes on.
      await record('prune-a', 'prune-a-4');
      expect(await pruneRows()).toContain('prune-a:4');
      // A relay given a retention prunes on its own (on a bus of its own: the rows it publishes stay out of NATS).
      await stamp("update outbox_event set published_at = now() - interval '2 hours' where aggregate_id = 'prune-d'");
      const memory = createMemoryBus();
      const relay = createOutboxRelay({ db, bus: memory, logger: testLogger, retentionMs: 3_600_000 });
      relay.start();
      stops.push(async () => {
        await relay.stop();
        await memory.close();
      });
      await waitFor(pruneRows, (rows) => !rows.includes('prune-d:1'));
      expect(await pruneRows()).toContain('prune-d:2');
    } finally {
      await stamp("delete from outbox_event where aggregate_id like 'prune-%'");
    }
  });

  test('pruning keeps the rows an operator is republishing while it runs', async () => {
    try {
      for (let i = 0; i < 3; i++) await record('prune-r', `r${i}`);
      await stamp("update outbox_event set published_at = now() - interval '2 hours' where aggregate_id = 'prune-r'");
      const operator = new pg.Client({ connectionString: database.url });
      await operator.connect();
      try {
        await operator.query('begin');
        await operator.query("update outbox_event set published_at = null where aggregate_id = 'prune-r'");
        // The prune reads the rows as published long ago, then waits for the operator's transaction.
        const pruning = pruneOutbox(db, 3_600_000);
        await new Promise((r) => setTimeout(r, 300));
        await operator.query('commit');
        expect(await pruning).toBe(0);
      } finally {
        await operator.end();
      }
      expect(await pruneRows()).toEqual(['prune-r:1', 'prune-r:2', 'prune-r:3']);
    } finally {
      await stamp("delete from outbox_event where aggregate_id like 'prune-%'");
    }
  });

  test('events are numbered per aggregate and delivered in order, exactly once', async () => {
    await record('agg-a', 'one');
    await record('agg-b', 'x');
    await record('agg-a', 'two');
    await record('agg-a', 'three');
    const relay = createOutboxRelay({ db, bus, logger: testLogger, pollIntervalMs: 20 });
    relay.start();
    stops.push(() => relay.stop());
    const seen: string[] = [];
    await consume('alpha-order', seen);
    await eventually(() => seen.length === 4, 'four events');
    expect(seen.filter((s) => s.startsWith('agg-a'))).toEqual(['agg-a:1:one', 'agg-a:2:two', 'agg-a:3:three']);
    expect(seen).toContain('agg-b:1:x');
  });

  test('events recorded together are numbered per aggregate in the order given, after those before them', async () => {
    await record('agg-e', 'first');
    const at = new Date('2026-01-15T00:00:00Z');
    const envelopes = await db.transaction((em) =>
      recordEvents(em, [
        eventRecord(noted, { value: 'e2' }, { aggregateId: 'agg-e', occurredTime: at }),
        eventRecord(noted, { value: 'f1' }, { aggregateId: 'agg-f', occurredTime: at }),
        eventRecord(noted, { value: 'e3' }, { aggregateId: 'agg-e', occurredTime: at }),
      ]),
    );
    expect(envelopes.map((e) => `${e.aggregateId}:${e.aggregateSeq}`)).toEqual(['agg-e:2', 'agg-f:1', 'agg-e:3']);
    const relay = createOutboxRelay({ db, bus, logger: testLogger, pollIntervalMs: 20 });
    relay.start();
    stops.push(() => relay.stop());
    const seen: string[] = [];
    await consume('alpha-batch', seen);
    await eventually(() => seen.filter((x) => /^agg-[ef]:/.test(x)).length === 4, 'four events');
    expect(seen.filter((x) => x.startsWith('agg-e'))).toEqual(['agg-e:1:first', 'agg-e:2:e2', 'agg-e:3:e3']);
  });

  test('a caller holding its own lock on the aggregates takes no advisory lock, and numbering is the same', async () => {
    await record('agg-g', 'first');
    const at = new Date('2026-01-15T00:00:00Z');
    const advisoryLocks = (em: Em) =>
      em.execute<{ n: string }[]>(
        "select count(*) as n from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()",
      );
    const [locked, unlocked] = await Promise.all(
      [true, false].map((aggregatesLocked) =>
        db.transaction(async (em) => {
          const envelopes = await recordEvents(
            em,
            [
              eventRecord(
                noted,
                { value: 'g' },
                { aggregateId: `agg-${aggregatesLocked ? 'g' : 'h'}`, occurredTime: at },
              ),
            ],
            { aggregatesLocked },
          );
          return { seq: envelopes[0]?.aggregateSeq, locks: Number((await advisoryLocks(em))[0]?.n) };
        }),
      ),
    );
    expect(locked).toEqual({ seq: 2, locks: 0 });
    expect(unlocked).toEqual({ seq: 1, locks: 1 });
  });

  test('a rolled-back transaction publishes nothing', async () => {
    await expect(
      db.transaction(async (em) => {
        await recordEvent(em, noted, { value: 'ghost' }, { aggregateId: 'agg-r', occurredTime: new Date() });
        throw new Error('rollback');
      }),
    ).rejects.toThrow('rollback');
    const rows = await db
      .fork()
      .execute<{ n: string }[]>("select count(*) as n from outbox_event where aggregate_id = 'agg-r'");
    expect(Number(rows[0]?.n)).toBe(0);
  });

  test('a relay that publishes but crashes before marking republishes, and consumers apply once', async () => {
    await record('agg-c', 'once');
    let crashes = 1;
    const crashingBus: EventBus = {
      ...bus,
      async publish(message) {
        const result = await bus.publish(message);
        if (message.envelope.aggregateId === 'agg-c' && crashes-- > 0) throw new Error('crash after publish');
        return result;
      },
    };
    const relay = createOutboxRelay({ db, bus: crashingBus, logger: testLogger, pollIntervalMs: 20 });
    relay.start();
    stops.push(() => relay.stop());
    const seen: string[] = [];
    await consume('alpha-crash', seen);
    await eventually(() => seen.includes('agg-c:1:once'), 'the event');
    expect(await relay.flush(5_000)).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.filter((s) => s.startsWith('agg-c'))).toEqual(['agg-c:1:once']);
  });

  test('a publish failing among others in flight keeps every aggregate in order, each event applied once', async () => {
    for (const seq of [1, 2])
      for (const aggregate of ['agg-f1', 'agg-f2', 'agg-f3']) await record(aggregate, `v${seq}`);
    let failures = 1;
    const sent: string[] = [];
    const failingBus: EventBus = {
      ...bus,
      async publish(message) {
        sent.push(`${message.envelope.aggregateId}:${message.envelope.aggregateSeq}`);
        // The second of the three in flight fails once; the third is acknowledged before the retry.
        if (message.envelope.aggregateId === 'agg-f2' && failures-- > 0) throw new Error('no acknowledgement');
        return bus.publish(message);
      },
    };
    const relay = createOutboxRelay({ db, bus: failingBus, logger: testLogger, pollIntervalMs: 20 });
    relay.start();
    stops.push(() => relay.stop());
    const seen: string[] = [];
    await consume('alpha-pipelined', seen);
    await eventually(() => seen.filter((s) => /^agg-f\d:/.test(s)).length >= 6, 'six events');
    expect(await relay.flush(5_000)).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    for (const aggregate of ['agg-f1', 'agg-f2', 'agg-f3']) {
      expect(seen.filter((s) => s.startsWith(`${aggregate}:`))).toEqual([`${aggregate}:1:v1`, `${aggregate}:2:v2`]);
    }
    // What was acknowledged beside the failure is stamped, not sent again; only the failed one is.
    expect(sent.filter((s) => s.startsWith('agg-f')).sort()).toEqual([
      'agg-f1:1',
      'agg-f1:2',
      'agg-f2:1',
      'agg-f2:1',
      'agg-f2:2',
      'agg-f3:1',
      'agg-f3:2',
    ]);
  });

  test('a consumer skips an event id it has already applied', async () => {
    const memory = createMemoryBus();
    // A bus that delivers every message twice, as JetStream may after a lost acknowledgement.
    const twice: EventBus = {
      ...memory,
      consume: (options) =>
        memory.consume({
          ...options,
          handle: async (delivery) => {
            await options.handle(delivery);
            await options.handle({ ...delivery, deliveryCount: delivery.deliveryCount + 1 });
          },
        }),
    };
    const seen: string[] = [];
    const subscription = await startConsumer({
      name: 'alpha-twice',
      stream: 'alpha',
      handlers: [on(noted, async (_em, e) => void seen.push(e.payload.value))],
      db,
      bus: twice,
      logger: testLogger,
    });
    stops.push(async () => {
      await subscription.stop();
      await memory.close();
    });
    const envelope = await record('agg-t', 'twice');
    await memory.publish({
      subject: noted.subject,
      envelope,
      payload: new Uint8Array([10, 5, 116, 119, 105, 99, 101]),
    });
    await eventually(() => seen.length >= 1, 'the event');
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual(['twice']);
  });

  test('a message that keeps failing is parked, listed, and replayed once fixed', async () => {
    await record('agg-p', 'poison');
    await record('agg-p', 'after');
    const relay = createOutboxRelay({ db, bus, logger: testLogger, pollIntervalMs: 20 });
    relay.start();
    stops.push(() => relay.stop());
    const seen: string[] = [];
    let broken = true;
    const handlers = await consume('alpha-park', seen, { fail: (v) => v === 'poison' && broken, maxAttempts: 3 });
    await eventually(() => seen.some((s) => s.startsWith('agg-p')), 'the next event after the parked one');
    expect(seen.filter((s) => s.startsWith('agg-p'))).toEqual(['agg-p:2:after']);
    const parked = await listParkedEvents(db, { consumer: 'alpha-park' });
    expect(parked).toHaveLength(1);
    expect(parked[0]).toMatchObject({
      consumer: 'alpha-park',
      subject: noted.subject,
      attempts: 3,
      error: 'cannot take poison',
    });
    broken = false;
    const eventId = parked[0]?.eventId ?? '';
    expect(
      await db.transaction((em) => replayParkedEvent(em, { name: 'alpha-park', stream: 'alpha', handlers }, eventId)),
    ).toBe(true);
    expect(seen.filter((s) => s.startsWith('agg-p'))).toEqual(['agg-p:2:after', 'agg-p:1:poison']);
    expect(await listParkedEvents(db, { consumer: 'alpha-park' })).toHaveLength(0);
    expect(
      await db.transaction((em) => replayParkedEvent(em, { name: 'alpha-park', stream: 'alpha', handlers }, eventId)),
    ).toBe(false);
  });

  /** A note that was never recorded here, for the buses below. */
  const unrecordedNote = (value: string): BusMessage => ({
    subject: noted.subject,
    envelope: {
      eventId: newUlid(),
      eventType: noted.type,
      schema: noted.schema.typeName,
      aggregateId: 'agg-d',
      aggregateSeq: 1,
      occurredTime: new Date('2026-01-15T00:00:00Z'),
      producer: 'alpha',
    },
    payload: toBinary(StringValueSchema, create(StringValueSchema, { value })),
  });

  /** A bus that hands `message` to the consumer once, as its `deliveryCount`th delivery, before consume returns. */
  const deliveringOnce = (message: BusMessage, deliveryCount: number): EventBus => ({
    survivesRestart: true,
    ensureStream: async () => {},
    publish: async () => ({ duplicate: false }),
    consume: async (options) => {
      await options.handle({ message, deliveryCount, working: () => {} });
      return { stop: async () => {} };
    },
    close: async () => {},
  });

  test('events recorded while applying an event carry its trace context; invalid ones are dropped', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const traced = { ...unrecordedNote('traced'), envelope: { ...unrecordedNote('traced').envelope, traceparent } };
    await startConsumer({
      name: 'alpha-traced',
      stream: 'alpha',
      handlers: [
        on(noted, (em, e) =>
          recordEvent(
            em,
            noted,
            { value: `after ${e.payload.value}` },
            { aggregateId: 'trace-fwd', occurredTime: e.envelope.occurredTime },
          ).then(() => {}),
        ),
      ],
      db,
      bus: deliveringOnce(traced, 1),
      logger: testLogger,
    });
    await withTraceparent('00-not-a-trace', () => record('trace-bad', 'x'));
    // Version ff is invalid (W3C), and an invalid one inside a valid context leaves no context.
    await withTraceparent(traceparent, () =>
      withTraceparent(traceparent.replace(/^00/, 'ff'), () => record('trace-ff', 'x')),
    );
    const rows = await db
      .fork()
      .execute<{ aggregate_id: string; traceparent: string | null }[]>(
        "select aggregate_id, traceparent from outbox_event where aggregate_id like 'trace-%' order by 1",
      );
    expect(rows).toEqual([
      { aggregate_id: 'trace-bad', traceparent: null },
      { aggregate_id: 'trace-ff', traceparent: null },
      { aggregate_id: 'trace-fwd', traceparent },
    ]);
  });

  test('a message whose deliveries all ended unacknowledged is parked without running its handler, unless applied', async () => {
    const ran: string[] = [];
    const startWith = (message: BusMessage, deliveryCount: number) =>
      startConsumer({
        name: 'alpha-deliveries',
        stream: 'alpha',
        handlers: [on(noted, async (_em, e) => void ran.push(e.payload.value))],
        db,
        bus: deliveringOnce(message, deliveryCount),
        logger: testLogger,
      });
    // The tenth delivery still runs the handler; after ten that never ended, the eleventh parks.
    const tenth = unrecordedNote('tenth');
    await startWith(tenth, 10);
    const crasher = unrecordedNote('crasher');
    await startWith(crasher, 11);
    // A message applied already (its handler committed after the acknowledgement wait) is skipped, not parked.
    await startWith(tenth, 11);
    expect(ran).toEqual(['tenth']);
    expect(await listParkedEvents(db, { consumer: 'alpha-deliveries' })).toMatchObject([
      {
        eventId: crasher.envelope.eventId,
        subject: noted.subject,
        attempts: 10,
        error:
          'delivered 10 times without being acknowledged: ' +
          'the process stopped or the handler outlasted the acknowledgement wait',
      },
    ]);
  });

  test('a message that cannot be parked yet holds its consumer until the database takes it', async () => {
    const held = unrecordedNote('held');
    // Parking fails (here: its table is away) until the table is back.
    await stamp('alter table parked_event rename to parked_event_away');
    let away = true;
    try {
      let outcome: string | undefined;
      startConsumer({
        name: 'alpha-unparkable',
        stream: 'alpha',
        handlers: [on(noted, async () => {})],
        db,
        bus: deliveringOnce(held, 11),
        logger: testLogger,
        retryDelayMs: 10,
      }).then(
        () => {
          outcome = 'parked';
        },
        (err: Error) => {
          outcome = err.message;
        },
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(outcome).toBeUndefined();
      await stamp('alter table parked_event_away rename to parked_event');
      away = false;
      await eventually(() => outcome !== undefined, 'the park');
      expect(outcome).toBe('parked');
    } finally {
      if (away) await stamp('alter table parked_event_away rename to parked_event');
    }
    expect(await listParkedEvents(db, { consumer: 'alpha-unparkable' })).toMatchObject([
      { eventId: held.envelope.eventId, attempts: 10 },
    ]);
  });

  test('a message of another type or schema than its handler takes is parked at once, and not replayed', async () => {
    await record('agg-v', 'v2');
    await record('agg-v', 'bytes');
    await record('agg-v', 'v1');
    // A producer already on the next version, then a payload of another message, on the handled subject.
    const relabelling: EventBus = {
      ...bus,
      publish(message) {
        const { envelope } = message;
        if (envelope.aggregateId !== 'agg-v' || envelope.aggregateSeq === 3) return bus.publish(message);
        const relabelled =
          envelope.aggregateSeq === 1
            ? { ...envelope, eventType: 'note.added.v2' }
            : { ...envelope, schema: BytesValueSchema.typeName };
        return bus.publish({ ...message, envelope: relabelled });
      },
    };
    const relay = createOutboxRelay({ db, bus: relabelling, logger: testLogger, pollIntervalMs: 20 });
    relay.start();
    stops.push(() => relay.stop());
    const seen: string[] = [];
    const handlers = await consume('alpha-versions', seen);
    await eventually(() => seen.some((s) => s.startsWith('agg-v')), 'the event after the relabelled ones');
    expect(seen.filter((s) => s.startsWith('agg-v'))).toEqual(['agg-v:3:v1']);
    const parked = await listParkedEvents(db, { consumer: 'alpha-versions' });
    const errors = [
      'billing.alpha.note.added carries note.added.v2 (google.protobuf.StringValue), ' +
        'but its handler takes note.added.v1 (google.protobuf.StringValue)',
      'billing.alpha.note.added carries note.added.v1 (google.protobuf.BytesValue), ' +
        'but its handler takes note.added.v1 (google.protobuf.StringValue)',
    ];
    expect(parked.map(({ error, attempts }) => ({ error, attempts }))).toEqual(
      errors.map((error) => ({ error, attempts: 0 })),
    );
    for (const [i, { eventId }] of parked.entries()) {
      await expect(
        db.transaction((em) => replayParkedEvent(em, { name: 'alpha-versions', stream: 'alpha', handlers }, eventId)),
      ).rejects.toThrow(errors[i]);
    }
    expect(await listParkedEvents(db, { consumer: 'alpha-versions' })).toHaveLength(2);
    expect(seen.filter((s) => s.startsWith('agg-v'))).toEqual(['agg-v:3:v1']);
  });
});
