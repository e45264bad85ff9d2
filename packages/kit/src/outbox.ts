// The transactional outbox: a change and the events it causes are written in one transaction; the relay
// publishes them afterwards, in order per aggregate (the publishes of different aggregates in flight together),
// and stamps them. The database stays the source of truth: rows are kept after publication, so an operator can
// publish the events of a time range again (within the service's retention, for a service that sets one).

import type { EventType } from '@billing/proto/events/define';
import { create, type DescMessage, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import type { EventBus, Subscription } from './bus.ts';
import { type Database, type Em, queryBound } from './db.ts';
import type { BusMessage, EventEnvelope } from './events.ts';
import { newUlid } from './ids.ts';
import { startPeriodic } from './periodic.ts';
import { currentTraceparent } from './trace.ts';

/** What the caller says about an event besides its payload. */
export interface EventContext {
  /** The aggregate (plan key, subscription id...) whose sequence the event extends. */
  aggregateId: string;
  /** When it happened, from the service's clock. */
  occurredTime: Date;
  /** The request that caused it. */
  requestId?: string;
  /** Trace context of that request. */
  traceparent?: string;
}

/** One event to record: its type, payload and context. */
export interface EventRecord<Schema extends DescMessage = DescMessage> {
  /** The event type. */
  event: EventType<Schema>;
  /** The payload. */
  payload: MessageInitShape<Schema>;
  /** Aggregate, time, request. */
  context: EventContext;
}

/** An event to record, its payload checked against its type. */
export function eventRecord<Schema extends DescMessage>(
  event: EventType<Schema>,
  payload: MessageInitShape<Schema>,
  context: EventContext,
): EventRecord {
  return { event, payload, context } as unknown as EventRecord;
}

/** Writes an event to the outbox in the caller's transaction; returns its envelope. */
export async function recordEvent<Schema extends DescMessage>(
  em: Em,
  event: EventType<Schema>,
  payload: MessageInitShape<Schema>,
  context: EventContext,
): Promise<EventEnvelope> {
  const [envelope] = await recordEvents(em, [eventRecord(event, payload, context)]);
  if (!envelope) throw new Error('the outbox did not record the event');
  return envelope;
}

/** How recordEvents may write. */
export interface RecordOptions {
  /**
   * The caller holds a lock that every writer of these aggregates takes, so no other transaction numbers them
   * meanwhile: the per-aggregate advisory locks are skipped (a thousand aggregates cost them milliseconds).
   */
  aggregatesLocked?: boolean;
}

/**
 * Writes events to the outbox in the caller's transaction, in two statements however many there are; events of
 * one aggregate get consecutive sequence numbers in the order given. Returns their envelopes, in order.
 */
export async function recordEvents(
  em: Em,
  records: readonly EventRecord[],
  options: RecordOptions = {},
): Promise<EventEnvelope[]> {
  if (records.length === 0) return [];
  const ordinal = new Map<string, number>();
  const rows = records.map((r) => {
    const n = (ordinal.get(r.context.aggregateId) ?? 0) + 1;
    ordinal.set(r.context.aggregateId, n);
    return {
      id: newUlid(),
      subject: r.event.subject,
      type: r.event.type,
      schema: r.event.schema.typeName,
      agg: r.context.aggregateId,
      n,
      at: r.context.occurredTime.toISOString(),
      producer: r.event.producer,
      rid: r.context.requestId ?? null,
      tp: r.context.traceparent ?? currentTraceparent() ?? null,
      payload: Buffer.from(toBinary(r.event.schema, create(r.event.schema, r.payload))).toString('base64'),
    };
  });
  // The advisory locks (taken in one order) serialise writers of an aggregate so that sequence numbers never
  // collide, even when the caller holds no row lock on the aggregate.
  if (!options.aggregatesLocked) {
    await queryBound(
      em,
      `select pg_advisory_xact_lock(hashtext(a))
         from (select distinct a from jsonb_array_elements_text($1::jsonb) as a order by a) as locks`,
      [JSON.stringify([...ordinal.keys()])],
    );
  }
  const inserted = await queryBound<{ id: string; aggregate_seq: string }>(
    em,
    `insert into outbox_event
       (id, subject, type, schema, aggregate_id, aggregate_seq, occurred_at, producer, request_id, traceparent, payload)
     select x.id, x.subject, x.type, x.schema, x.agg,
            coalesce((select max(o.aggregate_seq) from outbox_event o where o.aggregate_id = x.agg), 0) + x.n,
            x.at, x.producer, x.rid, x.tp, decode(x.payload, 'base64')
       from (select r->>0 as id, r->>1 as subject, r->>2 as type, r->>3 as schema, r->>4 as agg, (r->>5)::int as n,
                    (r->>6)::timestamptz as at, r->>7 as producer, r->>8 as rid, r->>9 as tp, r->>10 as payload
               from jsonb_array_elements($1::jsonb) as r) as x
     returning id, aggregate_seq`,
    // One array per row: PostgreSQL reads arrays through jsonb_array_elements three times faster than objects
    // through jsonb_to_recordset.
    [
      JSON.stringify(
        rows.map((r) => [r.id, r.subject, r.type, r.schema, r.agg, r.n, r.at, r.producer, r.rid, r.tp, r.payload]),
      ),
    ],
  );
  const seqs = new Map(inserted.map((r) => [r.id, Number(r.aggregate_seq)]));
  return records.map((r, i) => {
    const row = rows[i];
    if (!row) throw new Error('every record has a row');
    const envelope: EventEnvelope = {
      eventId: row.id,
      eventType: r.event.type,
      schema: r.event.schema.typeName,
      aggregateId: r.context.aggregateId,
      aggregateSeq: seqs.get(row.id) ?? 0,
      occurredTime: r.context.occurredTime,
      producer: r.event.producer,
    };
    if (r.context.requestId) envelope.requestId = r.context.requestId;
    if (row.tp) envelope.traceparent = row.tp;
    return envelope;
  });
}

/** A time range of the outbox: events recorded from `since` (included) until `until` (excluded). */
export interface RecordedRange {
  /** The first instant of the range. */
  since: Date;
  /** The instant the range ends, itself excluded. */
  until: Date;
}

/**
 * Makes the relay publish again, in position order, the events recorded in `range` that it published already
 * (clears their published_at in the caller's transaction); returns how many. Rows of the range still waiting are
 * left as they are: they are published once, as ever. Every event this clears is appended to its stream again
 * (JetStream drops a copy only within its duplicate window), so callers bound the range.
 */
export async function republishRecorded(em: Em, range: RecordedRange): Promise<number> {
  const [row] = await queryBound<{ n: string }>(
    em,
    `with cleared as (
       update outbox_event set published_at = null
        where recorded_at >= $1 and recorded_at < $2 and published_at is not null
       returning 1
     )
     select count(*) as n from cleared`,
    [range.since, range.until],
  );
  return Number(row?.n ?? 0);
}

/** Whether the outbox holds an event recorded before `time` that the relay has not published (yet, or again). */
export async function holdsUnpublishedBefore(em: Em, time: Date): Promise<boolean> {
  // The partial index on unpublished rows keeps this to the rows waiting, however long the outbox.
  const [row] = await queryBound<{ waiting: boolean }>(
    em,
    'select exists (select from outbox_event where published_at is null and recorded_at < $1) as waiting',
    [time],
  );
  return row?.waiting === true;
}

interface OutboxRow {
  position: string;
  id: string;
  subject: string;
  type: string;
  schema: string;
  aggregate_id: string;
  aggregate_seq: string;
  occurred_at: Date | string;
  producer: string;
  request_id: string | null;
  traceparent: string | null;
  payload: Uint8Array;
}

/** The message that publishes an outbox row. */
function toMessage(row: OutboxRow): BusMessage {
  const envelope: EventEnvelope = {
    eventId: row.id,
    eventType: row.type,
    schema: row.schema,
    aggregateId: row.aggregate_id,
    aggregateSeq: Number(row.aggregate_seq),
    occurredTime: new Date(row.occurred_at),
    producer: row.producer,
  };
  if (row.request_id) envelope.requestId = row.request_id;
  if (row.traceparent) envelope.traceparent = row.traceparent;
  return { subject: row.subject, envelope, payload: new Uint8Array(row.payload) };
}

/** Options of the relay. */
export interface OutboxRelayOptions {
  /** The service's database. */
  db: Database;
  /** Where events go. */
  bus: EventBus;
  /** Logger. */
  logger: Logger;
  /** Rows published per transaction. */
  batchSize?: number;
  /** How often to look for new rows when nobody calls `notify`, in ms. */
  pollIntervalMs?: number;
  /** Longest wait between attempts while the bus is down, in ms. */
  maxBackoffMs?: number;
  /**
   * Publish every row again once at start, published or not, before the new ones. The in-process bus keeps
   * its log in memory, so after a restart of the all-in-one process this is how consumers get what they
   * had not processed yet; they skip the rest by event id.
   */
  replayOnStart?: boolean;
  /** How long published rows are kept, in ms (`pruneOutbox`); forever when unset. */
  retentionMs?: number;
}

/** The relay that publishes outbox rows; start it once per process. */
export interface OutboxRelay {
  /** Starts the background loop. */
  start(): void;
  /** Asks for a pass now (call after committing a transaction that recorded events). */
  notify(): void;
  /** Publishes everything pending, or gives up after `timeoutMs`; returns the number of rows still pending. */
  flush(timeoutMs: number): Promise<number>;
  /** Stops the loop (after the current pass). */
  stop(): Promise<void>;
}

/** Consecutive runs of rows with no aggregate twice: each can be published at once, in order. */
function chunksOfDistinctAggregates(rows: readonly OutboxRow[]): OutboxRow[][] {
  const chunks: OutboxRow[][] = [];
  let chunk: OutboxRow[] = [];
  let aggregates = new Set<string>();
  for (const row of rows) {
    if (aggregates.has(row.aggregate_id)) {
      chunks.push(chunk);
      chunk = [];
      aggregates = new Set();
    }
    chunk.push(row);
    aggregates.add(row.aggregate_id);
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/** Rows read per statement when pruning. */
const PRUNE_WINDOW = 10_000;
/** How often the relay prunes, in ms. */
const PRUNE_INTERVAL_MS = 60_000;
// One replica at a time prunes.
const PRUNE_LOCK = 'billing.outbox.prune';

/**
 * Deletes the rows published more than `retentionMs` ago, except each aggregate's newest (it numbers the
 * aggregate's next event); returns how many it deleted. It reads the outbox in position order, a window at a
 * time, and stops at the first window reaching rows recorded within the retention (or when `stopping()` says
 * so), so a pass reads the old rows once, never the recent ones.
 */
export async function pruneOutbox(db: Database, retentionMs: number, stopping = () => false): Promise<number> {
  let total = 0;
  let after = '0';
  while (!stopping()) {
    const window = await db.transaction(async (em) => {
      const [lock] = await queryBound<{ locked: boolean }>(
        em,
        'select pg_try_advisory_xact_lock(hashtext($1)) as locked',
        [PRUNE_LOCK],
      );
      if (!lock?.locked) return undefined;
      // The age is checked again on the deleted row itself: a row an operator republishes meanwhile (its
      // published_at cleared) is kept.
      const [row] = await queryBound<{ deleted: string; last: string | null; read: string; old: boolean | null }>(
        em,
        `with win as (
           select position, aggregate_id, aggregate_seq, recorded_at from outbox_event
            where position > $1::bigint order by position limit $2
         ), pruned as (
           delete from outbox_event d using win
            where d.position = win.position and d.published_at < now() - make_interval(secs => $3::float8)
              and exists (select from outbox_event newer
                           where newer.aggregate_id = win.aggregate_id and newer.aggregate_seq > win.aggregate_seq)
           returning 1
         )
         select (select count(*) from pruned) as deleted, (select max(position) from win) as last,
                (select count(*) from win) as read,
                (select bool_and(recorded_at < now() - make_interval(secs => $3::float8)) from win) as old`,
        [after, PRUNE_WINDOW, retentionMs / 1000],
      );
      return row;
    });
    if (!window) return total;
    total += Number(window.deleted);
    if (Number(window.read) < PRUNE_WINDOW || !window.old || window.last === null) return total;
    after = window.last;
  }
  return total;
}

// One relay at a time per database publishes (several replicas may run one each): the advisory lock is
// taken inside the batch transaction, so each aggregate's events are published in the order of positions.
const RELAY_LOCK = 'billing.outbox.relay';

/** Creates the relay of one service's outbox. */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  if (options.retentionMs !== undefined && !(options.retentionMs > 0)) {
    throw new Error(`the outbox retention must be positive (got ${options.retentionMs} ms)`);
  }
  const batchSize = options.batchSize ?? 1_000;
  const pollIntervalMs = options.pollIntervalMs ?? 250;
  const maxBackoffMs = options.maxBackoffMs ?? 5_000;
  let running = false;
  let loop: Promise<void> | undefined;
  let pruning: Subscription | undefined;
  let wake: (() => void) | undefined;
  let pending = false;

  // Publishes one batch; returns how many rows it published and whether more may be waiting. A failed publish
  // is thrown once the stamps of the rows acknowledged beside it are committed.
  const publishBatch = async (): Promise<{ published: number; more: boolean }> => {
    const batch = await options.db.transaction(async (em) => {
      const [lock] = await queryBound<{ locked: boolean }>(
        em,
        'select pg_try_advisory_xact_lock(hashtext($1)) as locked',
        [RELAY_LOCK],
      );
      if (!lock?.locked) return { published: 0, more: false, failure: undefined };
      const rows = await queryBound<OutboxRow>(
        em,
        `select position, id, subject, type, schema, aggregate_id, aggregate_seq, occurred_at, producer,
                request_id, traceparent, payload
           from outbox_event where published_at is null order by position limit $1`,
        [batchSize],
      );
      // A chunk's publishes are in flight together. When one fails, the relay stops after its chunk and stamps the
      // chunk's acknowledged rows with the earlier chunks': no aggregate is twice in a chunk, so every earlier row
      // of theirs is stamped, and no later one was sent. A failure never puts an aggregate's events out of order.
      const done: string[] = [];
      let failure: { reason: unknown } | undefined;
      for (const chunk of chunksOfDistinctAggregates(rows)) {
        const outcomes = await Promise.allSettled(chunk.map((row) => options.bus.publish(toMessage(row))));
        outcomes.forEach((outcome, i) => {
          const row = chunk[i];
          if (outcome.status === 'fulfilled' && row) done.push(row.position);
          else if (outcome.status === 'rejected') failure ??= { reason: outcome.reason };
        });
        if (failure) break;
      }
      const published = done.length;
      if (done.length > 0) {
        await queryBound(em, 'update outbox_event set published_at = now() where position = any($1::bigint[])', [done]);
      }
      return { published, more: rows.length === batchSize, failure };
    });
    if (batch.failure) throw batch.failure.reason;
    return { published: batch.published, more: batch.more };
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
    });

  // Publishes every row once, in order, without touching published_at (used by replayOnStart).
  const replayAll = async () => {
    let after = '0';
    for (;;) {
      const rows = await queryBound<OutboxRow>(
        options.db.fork(),
        `select position, id, subject, type, schema, aggregate_id, aggregate_seq, occurred_at, producer,
                  request_id, traceparent, payload
             from outbox_event where position > $1::bigint and published_at is not null order by position limit $2`,
        [after, batchSize],
      );
      for (const row of rows) await options.bus.publish(toMessage(row));
      const last = rows[rows.length - 1];
      if (!last) return;
      after = last.position;
    }
  };

  const run = async () => {
    let backoff = 100;
    if (options.replayOnStart) {
      try {
        await replayAll();
      } catch (err) {
        options.logger.error({ err }, 'outbox replay at start failed');
      }
    }
    while (running) {
      pending = false;
      try {
        const { more } = await publishBatch();
        backoff = 100;
        if (more || pending) continue;
        await sleep(pollIntervalMs);
      } catch (err) {
        options.logger.warn({ err, retryInMs: backoff }, 'outbox relay could not publish; will retry');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, maxBackoffMs);
      }
    }
  };

  const countPending = async () => {
    const [row] = await queryBound<{ n: string }>(
      options.db.fork(),
      'select count(*) as n from outbox_event where published_at is null',
      [],
    );
    return Number(row?.n ?? 0);
  };

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
      const { retentionMs } = options;
      if (retentionMs !== undefined) {
        pruning = startPeriodic({
          name: 'outbox pruning',
          intervalMs: PRUNE_INTERVAL_MS,
          run: async () => {
            const pruned = await pruneOutbox(options.db, retentionMs, () => !running);
            if (pruned > 0) options.logger.info({ pruned }, 'published outbox rows past the retention deleted');
            return pruned;
          },
          logger: options.logger,
        });
      }
    },
    notify() {
      pending = true;
      wake?.();
    },
    async flush(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        try {
          const { published, more } = await publishBatch();
          if (published === 0 && !more && (await countPending()) === 0) return 0;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      return countPending();
    },
    async stop() {
      running = false;
      wake?.();
      await Promise.all([loop, pruning?.stop()]);
    },
  };
}
