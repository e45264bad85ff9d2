// Idempotent consumers: each event's effect and its id are committed in one transaction, so a redelivered
// event is skipped, forever. A handler that keeps failing is retried in place (keeping the order of the
// stream) and then parked in the consumer's database, where an operator can list and replay it.
import { type DescMessage, fromBinary, type MessageShape } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import type { Delivery, EventBus, Subscription } from './bus.ts';
import { type Database, type Em, isDatabaseUnavailable } from './db.ts';
import type { BusMessage, EventEnvelope, EventType } from './events.ts';
import { envelopeFromHeaders, envelopeToHeaders } from './events.ts';

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
  /** Attempts before a failing message is parked. */
  maxAttempts?: number;
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
  const inserted = await em.execute<{ event_id: string }[]>(
    'insert into processed_event (consumer, event_id) values (?, ?) on conflict do nothing returning event_id',
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
  const retryDelayMs = options.retryDelayMs ?? 200;
  const bySubject = new Map(options.handlers.map((h) => [h.event.subject, h]));
  const log = options.logger.child({ consumer: options.name });

  const process = async (delivery: Delivery) => {
    const { message } = delivery;
    const handler = bySubject.get(message.subject);
    if (!handler) return;
    let attempts = 0;
    let delay = retryDelayMs;
    for (;;) {
      try {
        await options.db.transaction((em) => applyOnce(em, options.name, handler, message));
        return;
      } catch (err) {
        // An unreachable database is no fault of the message: wait for it without spending attempts.
        if (!isDatabaseUnavailable(err) && !isUnavailableError(err)) attempts++;
        if (attempts >= maxAttempts) {
          await park(options.db, options.name, message, err, attempts);
          log.error({ err, eventId: message.envelope.eventId, subject: message.subject }, 'event parked');
          return;
        }
        log.warn({ err, eventId: message.envelope.eventId, attempts }, 'event handler failed; retrying');
        delivery.working();
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 10_000);
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

function isUnavailableError(err: unknown): boolean {
  return err instanceof Error && err.name === 'UnavailableError';
}

async function park(db: Database, consumer: string, message: BusMessage, err: unknown, attempts: number) {
  const error = err instanceof Error ? err.message : String(err);
  await db.transaction(async (em) => {
    await em.execute(
      `insert into parked_event (consumer, event_id, subject, headers, payload, error, attempts)
       values (?, ?, ?, ?, ?, ?, ?)
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
  const rows = await db
    .fork()
    .execute<
      { consumer: string; event_id: string; subject: string; error: string; attempts: number; parked_at: Date }[]
    >(
      `select consumer, event_id, subject, error, attempts, parked_at from parked_event
      where replayed_at is null and (?::text is null or consumer = ?)
        and (?::timestamptz is null
             or (date_trunc('milliseconds', parked_at), consumer, event_id) > (?::timestamptz, ?, ?))
      order by date_trunc('milliseconds', parked_at), consumer, event_id limit ?`,
      [
        options.consumer ?? null,
        options.consumer ?? null,
        afterTime,
        afterTime,
        afterConsumer,
        afterEvent,
        options.limit ?? 1_000,
      ],
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
 * parked; throws the handler's error otherwise (the caller's rollback keeps it parked).
 */
export async function replayParkedEvent(em: Em, consumer: ConsumerSpec, eventId: string): Promise<boolean> {
  const rows = await em.execute<{ subject: string; headers: Record<string, string> | string; payload: Uint8Array }[]>(
    'select subject, headers, payload from parked_event where consumer = ? and event_id = ? and replayed_at is null for update',
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
  await applyOnce(em, consumer.name, handler, message);
  await em.execute('update parked_event set replayed_at = now() where consumer = ? and event_id = ?', [
    consumer.name,
    eventId,
  ]);
  return true;
}
