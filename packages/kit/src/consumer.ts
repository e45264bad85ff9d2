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

/** Options of a consumer. */
export interface ConsumerOptions {
  /** Durable name, `<consumer-service>-<purpose>`. */
  name: string;
  /** The producing service whose stream is read. */
  stream: string;
  /** One handler per event type. */
  handlers: readonly EventHandler[];
  /** The consumer's database (processed and parked events live there). */
  db: Database;
  /** The bus. */
  bus: EventBus;
  /** Logger. */
  logger: Logger;
  /** Attempts before a failing message is parked. */
  maxAttempts?: number;
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

/** Applies one message in one transaction unless its id was processed already. */
async function applyOnce(db: Database, name: string, handler: EventHandler, message: BusMessage): Promise<Outcome> {
  return db.transaction(async (em) => {
    const inserted = await em.execute<{ event_id: string }[]>(
      'insert into processed_event (consumer, event_id) values (?, ?) on conflict do nothing returning event_id',
      [name, message.envelope.eventId],
    );
    if (inserted.length === 0) return 'skipped';
    const payload = fromBinary(handler.event.schema, message.payload);
    await handler.handle(em, { payload, envelope: message.envelope });
    return 'applied';
  });
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
        await applyOnce(options.db, options.name, handler, message);
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

/** Lists the messages parked by consumers of this database that were not replayed yet. */
export async function listParkedEvents(db: Database, consumer?: string): Promise<ParkedEvent[]> {
  const rows = await db
    .fork()
    .execute<
      { consumer: string; event_id: string; subject: string; error: string; attempts: number; parked_at: Date }[]
    >(
      `select consumer, event_id, subject, error, attempts, parked_at from parked_event
      where replayed_at is null and (?::text is null or consumer = ?) order by parked_at`,
      [consumer ?? null, consumer ?? null],
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
 * Runs a parked message through its handler again (after the operator fixed the cause). Returns true when it
 * was applied (or had been applied meanwhile); throws the handler's error otherwise, keeping it parked.
 */
export async function replayParkedEvent(
  options: Pick<ConsumerOptions, 'db' | 'handlers' | 'name'>,
  eventId: string,
): Promise<boolean> {
  const rows = await options.db
    .fork()
    .execute<{ subject: string; headers: Record<string, string> | string; payload: Uint8Array }[]>(
      'select subject, headers, payload from parked_event where consumer = ? and event_id = ? and replayed_at is null',
      [options.name, eventId],
    );
  const row = rows[0];
  if (!row) return false;
  const headers: Record<string, string> = typeof row.headers === 'string' ? JSON.parse(row.headers) : row.headers;
  const message: BusMessage = {
    subject: row.subject,
    envelope: envelopeFromHeaders((name) => headers[name]),
    payload: new Uint8Array(row.payload),
  };
  const handler = options.handlers.find((h) => h.event.subject === row.subject);
  if (!handler) throw new Error(`no handler for ${row.subject} in consumer ${options.name}`);
  await applyOnce(options.db, options.name, handler, message);
  await options.db.transaction((em) =>
    em.execute('update parked_event set replayed_at = now() where consumer = ? and event_id = ?', [
      options.name,
      eventId,
    ]),
  );
  return true;
}
