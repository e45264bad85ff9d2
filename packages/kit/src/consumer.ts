// Idempotent consumers: each event's effect and its id are committed in one transaction, so a redelivered
// event is skipped, forever. A handler that keeps failing is retried in place (keeping the order of the
// stream) and then parked in the consumer's database, where an operator can list and replay it; so is a
// message whose deliveries keep ending without an acknowledgement, and one of a type or schema the handler of
// its subject was not written for.

import type { EventType } from '@billing/proto/events/define';
import { type DescMessage, fromBinary, type MessageShape } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import type { Delivery, EventBus, Subscription } from './bus.ts';
import { type Database, type Em, isDatabaseUnavailable, queryBound } from './db.ts';
import type { BusMessage, EventEnvelope } from './events.ts';
import { envelopeFromHeaders, envelopeToHeaders } from './events.ts';
import { withTraceparent } from './trace.ts';

/** What a handler receives: the decoded payload and the envelope (time comes from `envelope.occurredTime`). */
export interface ConsumedEvent<Schema extends DescMessage> {
  /** The decoded payload. */
  payload: MessageShape<Schema>;
  /** The envelope. */
  envelope: EventEnvelope;
}

/** A handler of one event type, run inside the consumer's transaction. */
export interface EventHandler<Schema extends DescMessage = DescMessage> {
  /** The event type handled. */
  event: EventType<Schema>;
  /** Applies the event's effect with `em` (the transaction that also records the event id). */
  handle(em: Em, event: ConsumedEvent<Schema>): Promise<void>;
}

/** Pairs an event type with its handler, keeping the payload type. */
export function on<Schema extends DescMessage>(
  event: EventType<Schema>,
  handle: (em: Em, event: ConsumedEvent<Schema>) => Promise<void>,
): EventHandler {
  return { event, handle } as unknown as EventHandler;
}

/** What a service declares about one of its consumers. */
export interface ConsumerSpec {
  /** Durable name, `<consumer-service>-<purpose>`. */
  name: string;
  /** The producing service whose stream is read. */
  stream: string;
  /** One handler per event type. */
  handlers: readonly EventHandler[];
  /** Attempts before a failing message is parked (default 5). */
  maxAttempts?: number;
  /**
   * Deliveries of a message that run its handler (default 10). When they all ended without an acknowledgement
   * (the process stopped, or the handler outlasted the bus's acknowledgement wait), the next delivery parks the
   * message without running the handler.
   */
  maxDeliveries?: number;
}

/** Options of a running consumer. */
export interface ConsumerOptions extends ConsumerSpec {
  /** The consumer's database (processed and parked events live there). */
  db: Database;
  /** The bus. */
  bus: EventBus;
  /** Logger. */
  logger: Logger;
  /** First retry delay, doubled at each attempt, in ms. */
  retryDelayMs?: number;
}

/** A message an operator can see and replay. */
export interface ParkedEvent {
  /** Consumer name. */
  consumer: string;
  /** Event id. */
  eventId: string;
  /** Logical subject. */
  subject: string;
  /** Last error message. */
  error: string;
  /** Attempts made. */
  attempts: number;
  /** When it was parked. */
  parkedTime: Date;
}

/** Outcome of applying one message. */
type Outcome = 'applied' | 'skipped';

/** Applies one message in the transaction `em` unless its id was processed already. */
async function applyOnce(em: Em, name: string, handler: EventHandler, message: BusMessage): Promise<Outcome> {
  const inserted = await queryBound<{ event_id: string }>(
    em,
    'insert into processed_event (consumer, event_id) values ($1, $2) on conflict do nothing returning event_id',
    [name, message.envelope.eventId],
  );
  if (inserted.length === 0) return 'skipped';
  const payload = fromBinary(handler.event.schema, message.payload);
  await handler.handle(em, { payload, envelope: message.envelope });
  return 'applied';
}

/** Starts a durable, idempotent consumer; returns its subscription. */
export async function startConsumer(options: ConsumerOptions): Promise<Subscription> {
  const maxAttempts = options.maxAttempts ?? 5;
  const maxDeliveries = options.maxDeliveries ?? 10;
  const retryDelayMs = options.retryDelayMs ?? 200;
  const bySubject = new Map(options.handlers.map((h) => [h.event.subject, h]));
  const log = options.logger.child({ consumer: options.name });

  /** Waits before trying again, telling the bus the delivery is still being worked on. */
  const pause = async (delivery: Delivery, delayMs: number) => {
    delivery.working();
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    return Math.min(delayMs * 2, 10_000);
  };

  // Parking is what lets the consumer move on without losing the message, so it is retried in place until the
  // database takes it; were it to throw, the bus would redeliver the message, with one more delivery counted.
  const parkInPlace = async (delivery: Delivery, reason: unknown, attempts: number) => {
    const { message } = delivery;
    let delay = retryDelayMs;
    for (;;) {
      try {
        await park(options.db, options.name, message, reason, attempts);
        log.error({ err: reason, eventId: message.envelope.eventId, subject: message.subject }, 'event parked');
        return;
      } catch (err) {
        log.warn({ err, eventId: message.envelope.eventId }, 'could not park the event; retrying');
        delay = await pause(delivery, delay);
      }
    }
  };

  const process = async (delivery: Delivery) => {
    const { message } = delivery;
    const handler = bySubject.get(message.subject);
    if (!handler) return;
    // Another version on the same subject would decode with the wrong schema and apply silently.
    const mismatch = contractMismatch(handler, message);
    if (mismatch) {
      await parkInPlace(delivery, new Error(mismatch), 0);
      return;
    }
    // Deliveries that never ended (a crash, an OOM kill, a handler past the acknowledgement wait) would end the
    // same way again, and the stream would wait behind the message forever.
    if (delivery.deliveryCount > maxDeliveries && !(await alreadyApplied(options.db, options.name, message))) {
      const unacknowledged = delivery.deliveryCount - 1;
      const why =
        `delivered ${unacknowledged} times without being acknowledged: ` +
        'the process stopped or the handler outlasted the acknowledgement wait';
      await parkInPlace(delivery, new Error(why), unacknowledged);
      return;
    }
    let attempts = 0;
    let delay = retryDelayMs;
    for (;;) {
      try {
        // Events the handler records carry the trace context of the event it applies.
        await withTraceparent(message.envelope.traceparent, () =>
          options.db.transaction((em) => applyOnce(em, options.name, handler, message)),
        );
        return;
      } catch (err) {
        // An unreachable database is no fault of the message: wait for it without spending attempts.
        if (!isDatabaseUnavailable(err) && !isUnavailableError(err)) attempts++;
        if (attempts >= maxAttempts) {
          await parkInPlace(delivery, err, attempts);
          return;
        }
        log.warn({ err, eventId: message.envelope.eventId, attempts }, 'event handler failed; retrying');
        delay = await pause(delivery, delay);
      }
    }
  };

  return options.bus.consume({
    stream: options.stream,
    durable: options.name,
    subjects: options.handlers.map((h) => h.event.subject),
    handle: process,
  });
}

/**
 * Whether the consumer applied `message` already (a handler that committed after its acknowledgement wait was
 * redelivered meanwhile): such a delivery is acknowledged, never parked. An unreachable database answers no.
 */
async function alreadyApplied(db: Database, consumer: string, message: BusMessage): Promise<boolean> {
  const rows = await queryBound<{ applied: boolean }>(
    db.fork(),
    'select true as applied from processed_event where consumer = $1 and event_id = $2',
    [consumer, message.envelope.eventId],
  ).catch(() => []);
  return rows.length > 0;
}

/** Why `handler` may not decode `message` (another event type or payload schema), or undefined when it may. */
function contractMismatch(handler: EventHandler, message: BusMessage): string | undefined {
  const { eventType, schema } = message.envelope;
  const expected = handler.event;
  if (eventType === expected.type && schema === expected.schema.typeName) return undefined;
  const taken = `${expected.type} (${expected.schema.typeName})`;
  return `${message.subject} carries ${eventType} (${schema}), but its handler takes ${taken}`;
}

function isUnavailableError(err: unknown): boolean {
  return err instanceof Error && err.name === 'UnavailableError';
}

async function park(db: Database, consumer: string, message: BusMessage, err: unknown, attempts: number) {
  const error = err instanceof Error ? err.message : String(err);
  await db.transaction(async (em) => {
    await queryBound(
      em,
      `insert into parked_event (consumer, event_id, subject, headers, payload, error, attempts)
       values ($1, $2, $3, $4, $5, $6, $7)
       on conflict (consumer, event_id) do update
         set error = excluded.error, attempts = parked_event.attempts + excluded.attempts,
             parked_at = now(), replayed_at = null`,
      [
        consumer,
        message.envelope.eventId,
        message.subject,
        JSON.stringify(envelopeToHeaders(message.envelope)),
        Buffer.from(message.payload),
        error,
        attempts,
      ],
    );
  });
}

/** The sort key of a parked event in listings (parked time, consumer, event id). */
export function parkedEventKey(event: ParkedEvent): string {
  return JSON.stringify([event.parkedTime.toISOString(), event.consumer, event.eventId]);
}

/**
 * Lists the messages parked by consumers of this database that were not replayed yet, oldest first;
 * `after` is the parkedEventKey of the last one of the previous page.
 */
export async function listParkedEvents(
  db: Database,
  options: { consumer?: string; after?: string; limit?: number } = {},
): Promise<ParkedEvent[]> {
  const [afterTime, afterConsumer, afterEvent] = options.after
    ? (JSON.parse(options.after) as [string, string, string])
    : [null, null, null];
  // Times compare at millisecond precision, the precision of the keys handed out.
  const rows = await queryBound<{
    consumer: string;
    event_id: string;
    subject: string;
    error: string;
    attempts: number;
    parked_at: Date;
  }>(
    db.fork(),
    `select consumer, event_id, subject, error, attempts, parked_at from parked_event
      where replayed_at is null and ($1::text is null or consumer = $1)
        and ($2::timestamptz is null
             or (date_trunc('milliseconds', parked_at), consumer, event_id) > ($2::timestamptz, $3::text, $4::text))
      order by date_trunc('milliseconds', parked_at), consumer, event_id limit $5`,
    [options.consumer ?? null, afterTime, afterConsumer, afterEvent, options.limit ?? 1_000],
  );
  return rows.map((r) => ({
    consumer: r.consumer,
    eventId: r.event_id,
    subject: r.subject,
    error: r.error,
    attempts: r.attempts,
    parkedTime: new Date(r.parked_at),
  }));
}

/**
 * Runs a parked message through its handler again in the transaction `em` (after the operator fixed the
 * cause). Returns true when it was applied (or had been applied meanwhile), false when nothing of that id is
 * parked; throws the handler's error otherwise (the caller's rollback keeps it parked), and throws without
 * running the handler when the message is of another type or schema than the handler of its subject takes.
 */
export async function replayParkedEvent(em: Em, consumer: ConsumerSpec, eventId: string): Promise<boolean> {
  const rows = await queryBound<{ subject: string; headers: Record<string, string> | string; payload: Uint8Array }>(
    em,
    'select subject, headers, payload from parked_event where consumer = $1 and event_id = $2 and replayed_at is null for update',
    [consumer.name, eventId],
  );
  const row = rows[0];
  if (!row) return false;
  const headers: Record<string, string> = typeof row.headers === 'string' ? JSON.parse(row.headers) : row.headers;
  const message: BusMessage = {
    subject: row.subject,
    envelope: envelopeFromHeaders((name) => headers[name]),
    payload: new Uint8Array(row.payload),
  };
  const handler = consumer.handlers.find((h) => h.event.subject === row.subject);
  if (!handler) throw new Error(`no handler for ${row.subject} in consumer ${consumer.name}`);
  const mismatch = contractMismatch(handler, message);
  if (mismatch) throw new Error(mismatch);
  await applyOnce(em, consumer.name, handler, message);
  await queryBound(em, 'update parked_event set replayed_at = now() where consumer = $1 and event_id = $2', [
    consumer.name,
    eventId,
  ]);
  return true;
}
