// The operator API every service serves: parked messages listed and replayed over gRPC, and the events of a time
// range republished, bounded and rate-limited, on real PostgreSQL and NATS.

import { AdminService, type RepublishEventsRequestSchema } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { defineEvent } from '@billing/proto/events/define';
import { BadRequestSchema } from '@billing/proto/google/rpc/error_details_pb';
import {
  type PrivateNats,
  privateNats,
  reason,
  rpcError,
  startTestService,
  type TestService,
  testLogger,
  violations,
  waitFor,
} from '@billing/test/harness';
import { create, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { StringValueSchema, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type Client, Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { EventBus } from '../src/bus.ts';
import { on } from '../src/consumer.ts';
import { queryBound } from '../src/db.ts';
import { newUlid } from '../src/ids.ts';
import { createMemoryBus } from '../src/memory-bus.ts';
import { connectNatsBus } from '../src/nats-bus.ts';
import { recordEvent } from '../src/outbox.ts';
import type { ServiceDefinition } from '../src/runtime.ts';

/** What a RepublishEvents request may hold. */
type RepublishEventsRequestInit = MessageInitShape<typeof RepublishEventsRequestSchema>;

const noteAdded = defineEvent('billing.beta.note.added', StringValueSchema);
const applied: string[] = [];
// The notes whose cause an operator has fixed; every other note fails.
const fixed = new Set<string>();

const alpha: ServiceDefinition = {
  name: 'alpha',
  defaultPort: 0,
  entities: [],
  migrations: [],
  services: [],
  routes() {},
  consumers: () => [
    {
      name: 'alpha-notes',
      stream: 'beta',
      maxAttempts: 2,
      handlers: [
        on(noteAdded, async (_em, e) => {
          if (!fixed.has(e.payload.value)) throw new Error(`cannot take ${e.payload.value}`);
          applied.push(e.payload.value);
        }),
      ],
    },
  ],
};

const bus = createMemoryBus();
let service: TestService;
let client: Client<typeof AdminService>;

beforeAll(async () => {
  service = await startTestService(alpha, { bus });
  client = createClient(AdminService, createGrpcTransport({ baseUrl: service.baseUrl }));
});

afterAll(async () => {
  await service.destroy();
  await bus.close();
});

/** Publishes a note and waits until its consumer gave up on it; returns its event id. */
async function parkedNote(value: string): Promise<string> {
  const eventId = newUlid();
  await bus.publish({
    subject: noteAdded.subject,
    envelope: {
      eventId,
      eventType: noteAdded.type,
      schema: StringValueSchema.typeName,
      aggregateId: `note-${value}`,
      aggregateSeq: 1,
      occurredTime: new Date(),
      producer: 'beta',
    },
    payload: toBinary(StringValueSchema, create(StringValueSchema, { value })),
  });
  await waitFor(
    () => client.listParkedEvents({ consumer: 'alpha-notes' }),
    (listed) => listed.parkedEvents.some((p) => p.eventId === eventId),
  );
  return eventId;
}

/** The parked events of that id, of any consumer. */
async function parkedOf(eventId: string) {
  return (await client.listParkedEvents({})).parkedEvents.filter((p) => p.eventId === eventId);
}

/** Asks for a replay; answers the response or the error. */
function replay(requestId: string, eventId: string) {
  return client
    .replayParkedEvent({ requestId, consumer: 'alpha-notes', eventId })
    .catch((e: unknown) => ConnectError.from(e));
}

describe('parked events', () => {
  test('a message its consumer gave up on is listed with its last error and attempts', async () => {
    const eventId = await parkedNote('hello');
    const listed = await client.listParkedEvents({ consumer: 'alpha-notes' });
    expect(listed.parkedEvents.filter((p) => p.eventId === eventId)).toEqual([
      expect.objectContaining({
        consumer: 'alpha-notes',
        eventId,
        subject: 'billing.beta.note.added',
        error: 'cannot take hello',
        attempts: 2,
      }),
    ]);
  });

  test('a replay while its handler still fails is FAILED_PRECONDITION, and the message stays parked', async () => {
    const eventId = await parkedNote('still-broken');
    expect(await replay('r1', eventId)).toMatchObject({ code: Code.FailedPrecondition });
    expect(await parkedOf(eventId)).toHaveLength(1);
  });

  test('a replay once fixed applies the message once, even when the request is retried, and unlists it', async () => {
    const eventId = await parkedNote('fixed');
    fixed.add('fixed');
    expect(await replay('r2', eventId)).toMatchObject({ applied: true });
    expect(await replay('r2', eventId)).toMatchObject({ applied: true });
    expect(applied.filter((value) => value === 'fixed')).toEqual(['fixed']);
    expect(await parkedOf(eventId)).toHaveLength(0);
  });

  test('a message replayed already is NOT_FOUND to a new replay', async () => {
    const eventId = await parkedNote('replayed');
    fixed.add('replayed');
    expect(await replay('r3', eventId)).toMatchObject({ applied: true });
    expect(await replay('r4', eventId)).toMatchObject({ code: Code.NotFound });
  });

  test('an unknown consumer is NOT_FOUND', async () => {
    const err = await client
      .replayParkedEvent({ requestId: 'r5', consumer: 'nobody', eventId: 'x' })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.NotFound });
  });

  test('over gRPC, a megabyte consumer name is a short NOT_FOUND quoting a prefix of it', async () => {
    const consumer = 'c'.repeat(1_000_000);
    const err = await client
      .replayParkedEvent({ requestId: 'r6', consumer, eventId: 'x' })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.NotFound, rawMessage: `this service has no consumer "${'c'.repeat(40)}…"` });
  });
});

describe('republishing', () => {
  // A producer of notes on a NATS server of the test's own, which a test stops to hold the relay back.
  const noteWritten = defineEvent('billing.notes.note.written', StringValueSchema);
  const notes: ServiceDefinition = {
    name: 'notes',
    defaultPort: 0,
    entities: [],
    migrations: [],
    services: [],
    routes() {},
  };
  const STREAM = 'BILLING_NOTES';
  let nats: PrivateNats;
  let natsBus: EventBus;
  let producer: TestService;
  let admin: Client<typeof AdminService>;
  let inspector: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await privateNats();
    await nats.start();
    natsBus = await connectNatsBus({ servers: [nats.url], name: 'admin-test', logger: testLogger });
    producer = await startTestService(notes, { bus: natsBus });
    admin = createClient(AdminService, createGrpcTransport({ baseUrl: producer.baseUrl }));
    inspector = await connect({ servers: nats.url, maxReconnectAttempts: -1 });
    jsm = await jetstreamManager(inspector);
  });

  afterAll(async () => {
    await producer.destroy();
    await natsBus.close();
    await inspector.close();
    await nats.destroy();
  });

  // Each test starts as if the last republish were long past.
  beforeEach(() => intervalPassed());

  /**
   * Records a note for each value as recorded and published at `time`, long ago: JetStream's duplicate window
   * holds none of their ids, so every copy a republish sends is appended. Returns their event ids.
   */
  function publishedAt(time: string, values: readonly string[]): Promise<string[]> {
    return producer.context.db.transaction(async (em) => {
      const ids: string[] = [];
      for (const value of values) {
        const context = { aggregateId: `note-${value}`, occurredTime: new Date(time) };
        ids.push((await recordEvent(em, noteWritten, { value }, context)).eventId);
      }
      await queryBound(em, 'update outbox_event set recorded_at = $1, published_at = $1 where id = any($2)', [
        new Date(time),
        ids,
      ]);
      return ids;
    });
  }

  /** Moves the republishes accepted so far a day back, as if the interval since the last had passed. */
  async function intervalPassed(): Promise<void> {
    await queryBound(
      producer.context.db.fork(),
      `update idempotency_key set created_at = created_at - interval '1 day' where scope = $1`,
      ['billing.admin.v1.AdminService/RepublishEvents'],
    );
  }

  /** The state of the outbox's publication: rows waiting, and the latest stamp (which a republish renews). */
  async function publication(): Promise<{ waiting: number; lastStamp: string | null }> {
    const [row] = await queryBound<{ waiting: string; last_stamp: string | null }>(
      producer.context.db.fork(),
      `select count(*) filter (where published_at is null) as waiting, max(published_at)::text as last_stamp
         from outbox_event`,
      [],
    );
    return { waiting: Number(row?.waiting), lastStamp: row?.last_stamp ?? null };
  }

  /** Waits until the relay has published every row (and JetStream acknowledged each). */
  const settled = (timeoutMs?: number) => waitFor(publication, (p) => p.waiting === 0, timeoutMs);

  /** The last sequence of the notes' stream. */
  const streamEnd = async () => (await jsm.streams.info(STREAM)).state.last_seq;

  /** The event ids of the messages the stream holds after sequence `after`, in order. */
  async function appendedAfter(after: number): Promise<string[]> {
    const ids: string[] = [];
    for (let seq = after + 1; seq <= (await streamEnd()); seq++) {
      const message = await jsm.streams.getMessage(STREAM, { seq });
      ids.push(message?.header.get('Nats-Msg-Id') ?? `no message at ${seq}`);
    }
    return ids;
  }

  /** Asks to republish [since, until); answers the response or the error. */
  function republish(requestId: string, since: string, until: string) {
    return admin
      .republishEvents({
        requestId,
        sinceTime: timestampFromDate(new Date(since)),
        untilTime: timestampFromDate(new Date(until)),
      })
      .catch((e: unknown) => ConnectError.from(e));
  }

  test('a republish appends to the stream each event recorded in its range once, and no other', async () => {
    await publishedAt('2025-03-01T09:59:59.999Z', ['just-before']);
    const inRange = [
      ...(await publishedAt('2025-03-01T10:00:00Z', ['first', 'second'])),
      ...(await publishedAt('2025-03-01T10:59:59.999Z', ['last'])),
    ];
    await publishedAt('2025-03-01T11:00:00Z', ['at-the-end']);
    await publishedAt('2025-03-02T10:30:00Z', ['next-day']);
    const end = await streamEnd();
    expect(await republish('range', '2025-03-01T10:00:00Z', '2025-03-01T11:00:00Z')).toEqual(
      expect.objectContaining({ count: 3n }),
    );
    await settled();
    expect((await appendedAfter(end)).sort()).toEqual(inRange.sort());
  });

  test('a retry with the same request_id answers the first count and publishes nothing again', async () => {
    await publishedAt('2025-04-01T10:00:00Z', ['retried-1', 'retried-2']);
    const range = ['2025-04-01T00:00:00Z', '2025-04-02T00:00:00Z'] as const;
    expect(await republish('retried', ...range)).toEqual(expect.objectContaining({ count: 2n }));
    await settled();
    const end = await streamEnd();
    const before = await publication();
    // Within the interval, yet answered: a retry of an accepted call is its first answer.
    expect(await republish('retried', ...range)).toEqual(expect.objectContaining({ count: 2n }));
    expect(await publication()).toEqual(before);
    expect(await streamEnd()).toBe(end);
  });

  test('a range of exactly 24 hours is accepted', async () => {
    await publishedAt('2025-04-10T00:00:00Z', ['day-start']);
    await publishedAt('2025-04-10T23:59:59.999Z', ['day-end']);
    expect(await republish('whole-day', '2025-04-10T00:00:00Z', '2025-04-11T00:00:00Z')).toEqual(
      expect.objectContaining({ count: 2n }),
    );
    await settled();
  });

  describe('a range that is not valid is INVALID_ARGUMENT naming the field, and publishes nothing again', () => {
    // Events inside every range below, which a republish that went ahead would publish again.
    beforeAll(async () => {
      await publishedAt('2025-05-01T00:00:00Z', ['may-start']);
      await publishedAt('2025-05-01T12:00:00Z', ['may-noon']);
      await publishedAt('2025-05-02T00:00:00Z', ['may-next']);
    });

    const at = (time: string) => timestampFromDate(new Date(time));
    const MAY = at('2025-05-01T00:00:00Z');
    // [the range, the request's times, the fields named, the description of the last]
    test.each<[string, Omit<RepublishEventsRequestInit, '$typeName' | 'requestId'>, string[], string]>([
      ['without since_time', { untilTime: at('2025-05-01T23:00:00Z') }, ['since_time'], 'required'],
      ['without until_time', { sinceTime: MAY }, ['until_time'], 'required'],
      ['without either', {}, ['since_time', 'until_time'], 'required'],
      [
        'ending before it starts',
        { sinceTime: at('2025-05-01T13:00:00Z'), untilTime: at('2025-05-01T11:00:00Z') },
        ['until_time'],
        'must be after since_time',
      ],
      ['ending where it starts', { sinceTime: MAY, untilTime: MAY }, ['until_time'], 'must be after since_time'],
      [
        'a nanosecond longer than 24 hours',
        { sinceTime: MAY, untilTime: { seconds: MAY.seconds + 86_400n, nanos: 1 } },
        ['until_time'],
        'must be at most 24 hours after since_time',
      ],
      [
        'ending a year later',
        { sinceTime: MAY, untilTime: at('2026-05-01T00:00:00Z') },
        ['until_time'],
        'must be at most 24 hours after since_time',
      ],
      [
        'ending after the last time a Timestamp holds',
        { sinceTime: MAY, untilTime: { seconds: 10n ** 15n, nanos: 0 } },
        ['until_time'],
        'not a time from 0001-01-01 to 9999-12-31 (seconds 1000000000000000)',
      ],
      [
        'starting before the first time a Timestamp holds',
        { sinceTime: { seconds: -(10n ** 12n), nanos: 0 }, untilTime: MAY },
        ['since_time'],
        'not a time from 0001-01-01 to 9999-12-31 (seconds -1000000000000)',
      ],
    ])('%s', async (name, times, fields, description) => {
      const before = await publication();
      const err = await rpcError(
        admin.republishEvents({ requestId: `invalid-${name.replaceAll(' ', '-')}`, ...times }),
      );
      const sent = err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
      expect([err.code, reason(err), violations(err), sent.at(-1)?.description]).toEqual([
        Code.InvalidArgument,
        'INVALID_ARGUMENT',
        fields,
        description,
      ]);
      expect(await publication()).toEqual(before);
    });
  });

  describe('the rate limit', () => {
    test('a republish within 10 minutes of another, by any caller, is RESOURCE_EXHAUSTED REPUBLISH_TOO_SOON and publishes nothing again; once they have passed, it is accepted', async () => {
      await publishedAt('2025-06-01T08:00:00Z', ['june-morning']);
      await publishedAt('2025-06-01T20:00:00Z', ['june-evening']);
      expect(await republish('june-morning', '2025-06-01T00:00:00Z', '2025-06-01T12:00:00Z')).toEqual(
        expect.objectContaining({ count: 1n }),
      );
      await settled();
      const before = await publication();
      const refused = await rpcError(
        admin.republishEvents({
          requestId: 'june-evening',
          sinceTime: timestampFromDate(new Date('2025-06-01T12:00:00Z')),
          untilTime: timestampFromDate(new Date('2025-06-02T00:00:00Z')),
        }),
      );
      expect([refused.code, reason(refused)]).toEqual([Code.ResourceExhausted, 'REPUBLISH_TOO_SOON']);
      expect(refused.rawMessage).toMatch(/^a republish was accepted at \S+Z; the next may be from \S+Z$/);
      expect(await publication()).toEqual(before);
      await intervalPassed();
      // The refusal kept nothing of the call: its request_id is free, and the same call is accepted now.
      expect(await republish('june-evening', '2025-06-01T12:00:00Z', '2025-06-02T00:00:00Z')).toEqual(
        expect.objectContaining({ count: 1n }),
      );
      await settled();
    });

    test('of two republishes at once, one is accepted and the other is REPUBLISH_TOO_SOON', async () => {
      await publishedAt('2025-07-01T10:00:00Z', ['july-1']);
      await publishedAt('2025-07-02T10:00:00Z', ['july-2']);
      const outcomes = await Promise.all([
        republish('july-1', '2025-07-01T00:00:00Z', '2025-07-02T00:00:00Z'),
        republish('july-2', '2025-07-02T00:00:00Z', '2025-07-03T00:00:00Z'),
      ]);
      const refusals = outcomes.flatMap((o) => (o instanceof ConnectError ? [[o.code, reason(o)]] : []));
      expect(refusals).toEqual([[Code.ResourceExhausted, 'REPUBLISH_TOO_SOON']]);
      expect(outcomes.filter((o) => !(o instanceof ConnectError))).toEqual([expect.objectContaining({ count: 1n })]);
      await settled();
    });

    test('while the events of a republish wait for NATS, another is RESOURCE_EXHAUSTED REPUBLISH_IN_PROGRESS; once they are published, it is accepted', async () => {
      await publishedAt('2025-08-01T10:00:00Z', ['august-1a', 'august-1b']);
      await publishedAt('2025-08-02T10:00:00Z', ['august-2']);
      const end = await streamEnd();
      await nats.stop();
      try {
        expect(await republish('august-1', '2025-08-01T00:00:00Z', '2025-08-02T00:00:00Z')).toEqual(
          expect.objectContaining({ count: 2n }),
        );
        await intervalPassed();
        const refused = await rpcError(
          admin.republishEvents({
            requestId: 'august-2',
            sinceTime: timestampFromDate(new Date('2025-08-02T00:00:00Z')),
            untilTime: timestampFromDate(new Date('2025-08-03T00:00:00Z')),
          }),
        );
        expect([refused.code, reason(refused)]).toEqual([Code.ResourceExhausted, 'REPUBLISH_IN_PROGRESS']);
        expect(await publication()).toEqual(expect.objectContaining({ waiting: 2 }));
      } finally {
        await nats.start();
      }
      await settled(30_000);
      expect(await appendedAfter(end)).toHaveLength(2);
      await intervalPassed();
      expect(await republish('august-2', '2025-08-02T00:00:00Z', '2025-08-03T00:00:00Z')).toEqual(
        expect.objectContaining({ count: 1n }),
      );
      await settled();
    });
  });
});
