// The operator API every service serves: parked messages listed and replayed over gRPC, events republished.

import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { defineEvent } from '@billing/proto/events/define';
import { rpcError, startTestService, type TestService, violations, waitFor } from '@billing/test/harness';
import { create, toBinary } from '@bufbuild/protobuf';
import { StringValueSchema, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type Client, Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { on } from '../src/consumer.ts';
import { newUlid } from '../src/ids.ts';
import { createMemoryBus } from '../src/memory-bus.ts';
import { recordEvent } from '../src/outbox.ts';
import type { ServiceDefinition } from '../src/runtime.ts';

const noteAdded = defineEvent('billing.beta.note.added', StringValueSchema);
const alphaNoted = defineEvent('billing.alpha.note.added', StringValueSchema);
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
  const unpublished = async () => {
    const rows = await service.context.db
      .fork()
      .execute<{ n: string }[]>('select count(*) as n from outbox_event where published_at is null');
    return Number(rows[0]?.n);
  };

  test('events recorded since a time are published again', async () => {
    const since = new Date(Date.now() - 1_000);
    await service.context.db.transaction((em) =>
      recordEvent(em, alphaNoted, { value: 'again' }, { aggregateId: 'note-2', occurredTime: new Date() }),
    );
    service.context.relay.notify();
    await waitFor(unpublished, (n) => n === 0);
    const { count } = await client.republishEvents({ requestId: 'p1', sinceTime: timestampFromDate(since) });
    expect(count).toBe(1n);
    await waitFor(unpublished, (n) => n === 0);
  });

  test.each([
    ['far in the future', 10n ** 15n],
    ['far in the past', -(10n ** 12n)],
  ])('a since_time %s is INVALID_ARGUMENT naming it, and republishes nothing', async (_name, seconds) => {
    const err = await rpcError(client.republishEvents({ requestId: `p-${seconds}`, sinceTime: { seconds, nanos: 0 } }));
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['since_time']]);
    expect(await unpublished()).toBe(0);
  });

  test('since_time is required', async () => {
    const err = await client.republishEvents({ requestId: 'p2' }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.InvalidArgument });
  });
});
