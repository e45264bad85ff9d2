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
import { type Database, type Em, openDatabase, queryBound } from '../src/db.ts';
import type { BusMessage } from '../src/events.ts';
import { newUlid } from '../src/ids.ts';
import { createMemoryBus } from '../src/memory-bus.ts';
import { connectNatsBus } from '../src/nats-bus.ts';
import {
  createOutboxRelay,
  eventRecord,
  type OutboxRelay,
  pruneOutbox,
  recordEvent,
  recordEvents,
} from '../src/outbox.ts';
import { withTraceparent } from '../src/trace.ts';

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
    options: { fail?: (note: string) => boolean; maxAttempts?: number } = {},
  ) => {
    const handlers = [
      on(noted, async (em, event) => {
        const note = `${event.envelope.aggregateId}:${event.envelope.aggregateSeq}:${event.payload.value}`;
        if (options.fail?.(note)) throw new Error(`cannot take ${event.payload.value}`);
        await em.execute('select 1');
        seen.push(note);
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

  /** Starts a relay of the outbox to `relayBus`, stopped after the test. */
  const startRelay = (relayBus: EventBus = bus): OutboxRelay => {
    const relay = createOutboxRelay({ db, bus: relayBus, logger: testLogger, pollIntervalMs: 20 });
    relay.start();
    stops.push(() => relay.stop());
    return relay;
  };

  /**
   * Records a marker note of a fresh aggregate and waits until the consumer filling `seen` applied it. A consumer
   * takes its stream in order, so whatever was published before the marker it has taken by then: a second copy
   * of an earlier event would have been applied already, if it were going to be.
   */
  const passMarker = async (seen: string[], aggregateId: string) => {
    await record(aggregateId, 'marker');
    await waitFor(
      () => seen,
      (notes) => notes.includes(`${aggregateId}:1:marker`),
    );
  };

  /**
   * The shared bus, except that the first publish of an event of `aggregateId` fails: before it reaches NATS
   * (no acknowledgement) or after (the relay crashed before stamping it). Every publish asked for is in `sent`.
   */
  const failingOnce = (aggregateId: string, when: 'before publishing' | 'after publishing') => {
    const sent: string[] = [];
    let failures = 1;
    const failing: EventBus = {
      ...bus,
      async publish(message) {
        sent.push(`${message.envelope.aggregateId}:${message.envelope.aggregateSeq}`);
        const fails = message.envelope.aggregateId === aggregateId && failures-- > 0;
        if (fails && when === 'before publishing') throw new Error('no acknowledgement');
        const result = await bus.publish(message);
        if (fails) throw new Error('crash after publish');
        return result;
      },
    };
    return { bus: failing, sent };
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

  describe('pruning', () => {
    afterEach(() => stamp("delete from outbox_event where aggregate_id like 'prune-%'"));

    /** Records `count` notes of `aggregate`. */
    const recordNotes = async (aggregate: string, count: number) => {
      for (let i = 0; i < count; i++) await record(aggregate, `${aggregate}-${i + 1}`);
    };

    test("deletes rows published before the retention, but never an aggregate's newest or an unpublished one", async () => {
      for (const [aggregate, count] of [
        ['prune-a', 3],
        ['prune-b', 1],
        ['prune-c', 2],
        ['prune-d', 2],
        ['prune-e', 2],
      ] as const) {
        await recordNotes(aggregate, count);
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
    });

    test("keeps an aggregate's numbering going on from its newest row", async () => {
      await recordNotes('prune-a', 3);
      await stamp("update outbox_event set published_at = now() - interval '2 hours' where aggregate_id = 'prune-a'");
      expect(await pruneOutbox(db, 3_600_000)).toBe(2);
      await record('prune-a', 'prune-a-4');
      expect(await pruneRows()).toEqual(['prune-a:3', 'prune-a:4']);
    });

    test('runs on its own in a relay given a retention', async () => {
      await recordNotes('prune-d', 2);
      await stamp("update outbox_event set published_at = now() - interval '2 hours' where aggregate_id = 'prune-d'");
      // On a bus of its own: the rows it publishes stay out of NATS.
      const memory = createMemoryBus();
      const relay = createOutboxRelay({ db, bus: memory, logger: testLogger, retentionMs: 3_600_000 });
      relay.start();
      stops.push(async () => {
        await relay.stop();
        await memory.close();
      });
      await waitFor(pruneRows, (rows) => !rows.includes('prune-d:1'));
      expect(await pruneRows()).toContain('prune-d:2');
    });

    test('keeps the rows an operator is republishing while it runs', async () => {
      await recordNotes('prune-r', 3);
      await stamp("update outbox_event set published_at = now() - interval '2 hours' where aggregate_id = 'prune-r'");
      const operator = new pg.Client({ connectionString: database.url });
      await operator.connect();
      try {
        await operator.query('begin');
        await operator.query("update outbox_event set published_at = null where aggregate_id = 'prune-r'");
        const [session] = (await operator.query<{ pid: number }>('select pg_backend_pid() as pid')).rows;
        // The prune reads the rows as published long ago, then waits for the operator's transaction: the operator
        // commits once the prune is seen waiting for it.
        const pruning = pruneOutbox(db, 3_600_000);
        await waitFor(
          () =>
            queryBound<{ n: string }>(
              db.fork(),
              'select count(*) as n from pg_stat_activity where $1::int = any(pg_blocking_pids(pid))',
              [session?.pid],
            ),
          ([waiting]) => Number(waiting?.n) > 0,
        );
        await operator.query('commit');
        expect(await pruning).toBe(0);
      } finally {
        await operator.end();
      }
      expect(await pruneRows()).toEqual(['prune-r:1', 'prune-r:2', 'prune-r:3']);
    });
  });

  test('events are numbered per aggregate and delivered in order, exactly once', async () => {
    await record('agg-a', 'one');
    await record('agg-b', 'x');
    await record('agg-a', 'two');
    await record('agg-a', 'three');
    startRelay();
    const seen: string[] = [];
    await consume('alpha-order', seen);
    await waitFor(
      () => seen.length,
      (n) => n === 4,
    );
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
    startRelay();
    const seen: string[] = [];
    await consume('alpha-batch', seen);
    await waitFor(
      () => seen.filter((x) => /^agg-[ef]:/.test(x)).length,
      (n) => n === 4,
    );
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

  test('a relay that crashes after publishing, before stamping, publishes the event again', async () => {
    await record('agg-c1', 'once');
    const crashing = failingOnce('agg-c1', 'after publishing');
    const relay = startRelay(crashing.bus);
    expect(await relay.flush(5_000)).toBe(0);
    expect(crashing.sent.filter((s) => s.startsWith('agg-c1:'))).toEqual(['agg-c1:1', 'agg-c1:1']);
  });

  test('consumers apply once an event its relay published twice, having crashed before stamping it', async () => {
    await record('agg-c2', 'once');
    const relay = startRelay(failingOnce('agg-c2', 'after publishing').bus);
    const seen: string[] = [];
    await consume('alpha-crash', seen);
    await waitFor(
      () => seen,
      (notes) => notes.includes('agg-c2:1:once'),
    );
    expect(await relay.flush(5_000)).toBe(0);
    await passMarker(seen, 'marker-crash');
    expect(seen.filter((s) => s.startsWith('agg-c2:'))).toEqual(['agg-c2:1:once']);
  });

  /** Records two notes of each of three aggregates, the second of whose first publish fails (the three in flight). */
  const recordPipelined = async (prefix: string) => {
    for (const seq of [1, 2]) for (const n of [1, 2, 3]) await record(`${prefix}${n}`, `v${seq}`);
    // The second of the three in flight fails once; the third is acknowledged before the retry.
    return failingOnce(`${prefix}2`, 'before publishing');
  };

  test('a publish failing among others in flight keeps every aggregate in order, each event applied once', async () => {
    const relay = startRelay((await recordPipelined('agg-f')).bus);
    const seen: string[] = [];
    await consume('alpha-pipelined', seen);
    await waitFor(
      () => seen.filter((s) => /^agg-f\d:/.test(s)).length,
      (n) => n >= 6,
    );
    expect(await relay.flush(5_000)).toBe(0);
    await passMarker(seen, 'marker-pipelined');
    for (const aggregate of ['agg-f1', 'agg-f2', 'agg-f3']) {
      expect(seen.filter((s) => s.startsWith(`${aggregate}:`))).toEqual([`${aggregate}:1:v1`, `${aggregate}:2:v2`]);
    }
  });

  test('of publishes in flight together, only the failing one is sent again: those acknowledged beside it are stamped', async () => {
    const failing = await recordPipelined('agg-s');
    const relay = startRelay(failing.bus);
    expect(await relay.flush(5_000)).toBe(0);
    expect(failing.sent.filter((s) => s.startsWith('agg-s')).sort()).toEqual([
      'agg-s1:1',
      'agg-s1:2',
      'agg-s2:1',
      'agg-s2:1',
      'agg-s2:2',
      'agg-s3:1',
      'agg-s3:2',
    ]);
  });

  test('a consumer skips an event id it has already applied', async () => {
    const memory = createMemoryBus();
    // A bus that delivers every message twice, as JetStream may after a lost acknowledgement, and counts the
    // messages it has delivered twice.
    let deliveredTwice = 0;
    const twice: EventBus = {
      ...memory,
      consume: (options) =>
        memory.consume({
          ...options,
          handle: async (delivery) => {
            await options.handle(delivery);
            await options.handle({ ...delivery, deliveryCount: delivery.deliveryCount + 1 });
            deliveredTwice++;
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
    await waitFor(
      () => deliveredTwice,
      (n) => n === 1,
    );
    expect(seen).toEqual(['twice']);
  });

  /**
   * Records a note of `aggregateId` that the consumer `name` cannot take and one after it, and waits until the
   * consumer went past the first. Returns the first one's event id, the notes of the aggregate the consumer
   * applied, a replay of a parked event by that consumer, and a fix of the cause.
   */
  const poisoned = async (name: string, aggregateId: string) => {
    const poison = await record(aggregateId, 'poison');
    await record(aggregateId, 'after');
    startRelay();
    const seen: string[] = [];
    let broken = true;
    const handlers = await consume(name, seen, {
      fail: (note) => note === `${aggregateId}:1:poison` && broken,
      maxAttempts: 3,
    });
    const applied = () => seen.filter((s) => s.startsWith(`${aggregateId}:`));
    await waitFor(applied, (notes) => notes.length > 0);
    return {
      eventId: poison.eventId,
      applied,
      replay: (eventId: string) =>
        db.transaction((em) => replayParkedEvent(em, { name, stream: 'alpha', handlers }, eventId)),
      fix: () => {
        broken = false;
      },
    };
  };

  test('a message that keeps failing is parked and listed, and its consumer goes on past it', async () => {
    const { eventId, applied } = await poisoned('alpha-park', 'agg-p');
    expect(applied()).toEqual(['agg-p:2:after']);
    expect(await listParkedEvents(db, { consumer: 'alpha-park' })).toEqual([
      expect.objectContaining({
        consumer: 'alpha-park',
        eventId,
        subject: noted.subject,
        attempts: 3,
        error: 'cannot take poison',
      }),
    ]);
  });

  test('a parked message replayed once fixed is applied and no longer listed', async () => {
    const { eventId, applied, replay, fix } = await poisoned('alpha-replay', 'agg-q');
    fix();
    expect(await replay(eventId)).toBe(true);
    expect(applied()).toEqual(['agg-q:2:after', 'agg-q:1:poison']);
    expect(await listParkedEvents(db, { consumer: 'alpha-replay' })).toHaveLength(0);
  });

  test('a parked message replayed already is not replayed again', async () => {
    const { eventId, applied, replay, fix } = await poisoned('alpha-replay-twice', 'agg-u');
    fix();
    expect(await replay(eventId)).toBe(true);
    expect(await replay(eventId)).toBe(false);
    expect(applied()).toEqual(['agg-u:2:after', 'agg-u:1:poison']);
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

  /**
   * A bus that hands `message` to the consumer once, as its `deliveryCount`th delivery, before consume returns;
   * `working` hears each time the consumer says it is still at it (before every retry).
   */
  const deliveringOnce = (message: BusMessage, deliveryCount: number, working = () => {}): EventBus => ({
    survivesRestart: true,
    ensureStream: async () => {},
    publish: async () => ({ duplicate: false }),
    consume: async (options) => {
      await options.handle({ message, deliveryCount, working });
      return { stop: async () => {} };
    },
    close: async () => {},
  });

  /** The trace context recorded with the outbox rows of those aggregates, by aggregate. */
  const traceparents = (aggregateIds: string[]) =>
    queryBound<{ aggregate_id: string; traceparent: string | null }>(
      db.fork(),
      'select aggregate_id, traceparent from outbox_event where aggregate_id = any($1::text[]) order by 1',
      [aggregateIds],
    );

  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  test('events recorded while applying an event carry its trace context', async () => {
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
    expect(await traceparents(['trace-fwd'])).toEqual([{ aggregate_id: 'trace-fwd', traceparent }]);
  });

  test('events recorded in an invalid trace context carry none', async () => {
    await withTraceparent('00-not-a-trace', () => record('trace-bad', 'x'));
    // Version ff is invalid (W3C), and an invalid one inside a valid context leaves no context.
    await withTraceparent(traceparent, () =>
      withTraceparent(traceparent.replace(/^00/, 'ff'), () => record('trace-ff', 'x')),
    );
    expect(await traceparents(['trace-bad', 'trace-ff'])).toEqual([
      { aggregate_id: 'trace-bad', traceparent: null },
      { aggregate_id: 'trace-ff', traceparent: null },
    ]);
  });

  describe('a message whose deliveries all ended unacknowledged', () => {
    const ran: string[] = [];
    afterEach(() => {
      ran.splice(0);
    });
    /** Starts the consumer `name` on a bus that hands it `message` as its `deliveryCount`th delivery. */
    const startWith = (name: string, message: BusMessage, deliveryCount: number) =>
      startConsumer({
        name,
        stream: 'alpha',
        handlers: [on(noted, async (_em, e) => void ran.push(e.payload.value))],
        db,
        bus: deliveringOnce(message, deliveryCount),
        logger: testLogger,
      });

    test('still runs its handler at the tenth delivery', async () => {
      await startWith('alpha-tenth', unrecordedNote('tenth'), 10);
      expect(ran).toEqual(['tenth']);
      expect(await listParkedEvents(db, { consumer: 'alpha-tenth' })).toEqual([]);
    });

    test('is parked at the eleventh without running its handler', async () => {
      const crasher = unrecordedNote('crasher');
      await startWith('alpha-eleventh', crasher, 11);
      expect(ran).toEqual([]);
      expect(await listParkedEvents(db, { consumer: 'alpha-eleventh' })).toMatchObject([
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

    test('is skipped, not parked, at the eleventh when it was applied already', async () => {
      // Its handler committed after the acknowledgement wait.
      const applied = unrecordedNote('applied');
      await startWith('alpha-applied', applied, 10);
      await startWith('alpha-applied', applied, 11);
      expect(ran).toEqual(['applied']);
      expect(await listParkedEvents(db, { consumer: 'alpha-applied' })).toEqual([]);
    });
  });

  test('a message that cannot be parked yet holds its consumer until the database takes it', async () => {
    const held = unrecordedNote('held');
    // Parking fails (here: its table is away) until the table is back.
    await stamp('alter table parked_event rename to parked_event_away');
    let away = true;
    try {
      let outcome: string | undefined;
      let retries = 0;
      startConsumer({
        name: 'alpha-unparkable',
        stream: 'alpha',
        handlers: [on(noted, async () => {})],
        db,
        bus: deliveringOnce(held, 11, () => retries++),
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
      // Three failed attempts to park, and the consumer still holds the message.
      await waitFor(
        () => retries >= 3 || outcome !== undefined,
        (settled) => settled,
      );
      expect(outcome).toBeUndefined();
      await stamp('alter table parked_event_away rename to parked_event');
      away = false;
      await waitFor(
        () => outcome,
        (o) => o !== undefined,
      );
      expect(outcome).toBe('parked');
    } finally {
      if (away) await stamp('alter table parked_event_away rename to parked_event');
    }
    expect(await listParkedEvents(db, { consumer: 'alpha-unparkable' })).toMatchObject([
      { eventId: held.envelope.eventId, attempts: 10 },
    ]);
  });

  /** Why the consumer parks the events of `mismatched`: a type, then a schema, other than its handler takes. */
  const mismatchErrors = [
    'billing.alpha.note.added carries note.added.v2 (google.protobuf.StringValue), ' +
      'but its handler takes note.added.v1 (google.protobuf.StringValue)',
    'billing.alpha.note.added carries note.added.v1 (google.protobuf.BytesValue), ' +
      'but its handler takes note.added.v1 (google.protobuf.StringValue)',
  ];

  /**
   * Records three notes of `aggregateId` and relays them as a producer already on the next version would send
   * the first (another type) and as another message's payload the second (another schema), on the handled
   * subject; the consumer `name` applies the third. Returns the first two's event ids, in order, the notes of
   * the aggregate it applied, and its handlers.
   */
  const mismatched = async (name: string, aggregateId: string) => {
    const ids = [(await record(aggregateId, 'v2')).eventId, (await record(aggregateId, 'bytes')).eventId];
    await record(aggregateId, 'v1');
    const relabelling: EventBus = {
      ...bus,
      publish(message) {
        const { envelope } = message;
        if (envelope.aggregateId !== aggregateId || envelope.aggregateSeq === 3) return bus.publish(message);
        const relabelled =
          envelope.aggregateSeq === 1
            ? { ...envelope, eventType: 'note.added.v2' }
            : { ...envelope, schema: BytesValueSchema.typeName };
        return bus.publish({ ...message, envelope: relabelled });
      },
    };
    startRelay(relabelling);
    const seen: string[] = [];
    const handlers = await consume(name, seen);
    const applied = () => seen.filter((s) => s.startsWith(`${aggregateId}:`));
    await waitFor(applied, (notes) => notes.length > 0);
    /** The consumer's parked events of the two relabelled notes. */
    const parked = async () =>
      (await listParkedEvents(db, { consumer: name })).filter(({ eventId }) => ids.includes(eventId));
    return { ids, applied, handlers, parked };
  };

  test('a message of another type or schema than its handler takes is parked at once, and its consumer goes on', async () => {
    const { ids, applied, parked } = await mismatched('alpha-versions', 'agg-v');
    expect(applied()).toEqual(['agg-v:3:v1']);
    expect((await parked()).map(({ eventId, error, attempts }) => ({ eventId, error, attempts }))).toEqual(
      mismatchErrors.map((error, i) => ({ eventId: ids[i], error, attempts: 0 })),
    );
  });

  test('a message of another type or schema than its handler takes is not replayed, and stays parked', async () => {
    const { ids, applied, handlers, parked } = await mismatched('alpha-versions-replay', 'agg-w');
    for (const [i, eventId] of ids.entries()) {
      await expect(
        db.transaction((em) =>
          replayParkedEvent(em, { name: 'alpha-versions-replay', stream: 'alpha', handlers }, eventId),
        ),
      ).rejects.toThrow(mismatchErrors[i]);
    }
    expect(await parked()).toHaveLength(2);
    expect(applied()).toEqual(['agg-w:3:v1']);
  });
});
