// Raw usage events (`usage_event`, partitioned by month) and their exactly-once keys (`usage_event_key`), in SQL.
// Ingestion claims keys and stores a whole batch in one statement, its rows passed as one JSON parameter:
// ingestion must reach tens of thousands of events per second, and an ORM would insert row by row. Reads filter
// by what a meter selects (its type and property filters) in SQL, and aggregate the partial hours at a window's
// edges there, without moving the events to the service.
import { type Em, queryBound } from '@billing/kit/db';
import { Decimal } from '@billing/money';
import { FilterOperator, type Meter, MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { JsonObject, JsonValue } from '@bufbuild/protobuf';
import { MAX_NUMBER_LENGTH, MAX_VALUE_MAGNITUDE, VALUE_DECIMALS } from '../domain/meter.ts';
import type { EventPoint } from '../domain/period-value.ts';
import type { CorrectableEvent, StoredUsageEvent, ValidEvent } from '../domain/usage-event.ts';
import { fromDbCorrectableEvent, fromDbEventPoint, fromDbUsageEvent, type UsageEventRow } from './mapping.ts';

/** The parameters of a statement being built: `bind` appends a value and returns its placeholder. */
class BoundParameters {
  readonly values: unknown[] = [];

  /** The placeholder of `value`, bound as the next parameter. */
  bind(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** What claiming event keys found: which events are new, and which were stored before (same content or not). */
export interface Claim {
  /** Indexes of events stored for the first time by this call. */
  accepted: Set<number>;
  /** Indexes of events seen before, with whether their content matched. */
  duplicates: Map<number, 'same' | 'different'>;
}

// An event's (customer, id) key in a map: neither holds NUL (validation refuses it).
const eventKey = (customer: string, id: string) => `${customer}\u0000${id}`;

/**
 * The statement claiming keys and storing the events whose key it claimed ($1: the rows, $2: the ingestion time);
 * returns the events whose key was claimed before. Without `tolerateClaimed`, a key claimed before fails it, so
 * when it succeeds every key was claimed: it stores every event, and returns none.
 */
function claimStatement(tolerateClaimed: boolean): string {
  const rows = `with x as (
       select e->>0 as c, e->>1 as i, e->>2 as f, (e->>3)::timestamptz as t, e->>4 as y, e->5 as p,
              (e->>6)::boolean as l
         from jsonb_array_elements($1::jsonb) e
     )`;
  const claim =
    'insert into usage_event_key (customer_external_id, event_id, fingerprint, event_time) select c, i, f, t from x order by c, i';
  const store =
    'insert into usage_event (customer_external_id, event_id, event_type, event_time, properties, ingested_at, late)';
  if (!tolerateClaimed) return `${rows}, claimed as (${claim}) ${store} select c, i, y, t, p, $2, l from x`;
  return `${rows}, claimed as (
       ${claim} on conflict do nothing returning customer_external_id as c, event_id as i
     ), stored as (
       ${store} select x.c, x.i, x.y, x.t, x.p, $2, x.l from x join claimed on claimed.c = x.c and claimed.i = x.i
     )
     select c, i from x where not exists (select from claimed where claimed.c = x.c and claimed.i = x.i)`;
}

/**
 * Thrown by a claim expecting every key new when one was claimed before: its transaction is aborted and must be
 * done again without that expectation.
 */
export class KeyClaimedBeforeError extends Error {
  constructor() {
    super('an event key was claimed before');
  }
}

/** Whether a claim failed because a key was claimed before (a unique violation of usage_event_key). */
function isClaimedBefore(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown };
  return e.code === '23505' && e.constraint === 'usage_event_key_pkey';
}

/**
 * Claims the (customer, id) keys of `events` and stores the events whose key this call claimed, in one
 * statement; a key claimed before (by another call, even one running at the same moment, which this one waits
 * for) is a duplicate. Within one batch, the first event of a key wins. `late` holds the indexes of late events
 * (isLate). With `keysNew`, the claim expects every key new, which makes its key insert a third cheaper (plain,
 * instead of speculative per row), and throws KeyClaimedBeforeError when one is not.
 */
export async function claimAndStoreEvents(
  em: Em,
  events: readonly ValidEvent[],
  now: Date,
  late: ReadonlySet<number>,
  keysNew = false,
): Promise<Claim> {
  const accepted = new Set<number>();
  const duplicates = new Map<number, 'same' | 'different'>();
  // The first event of each id, per customer (two lookups of the strings as they are cost less than one of a
  // key made of both).
  const firstOfId = new Map<string, Map<string, ValidEvent>>();
  const candidates: ValidEvent[] = [];
  for (const e of events) {
    let ids = firstOfId.get(e.customer);
    if (!ids) {
      ids = new Map();
      firstOfId.set(e.customer, ids);
    }
    const first = ids.get(e.id);
    if (first) duplicates.set(e.index, first.fingerprint === e.fingerprint ? 'same' : 'different');
    else {
      ids.set(e.id, e);
      candidates.push(e);
    }
  }
  if (candidates.length === 0) return { accepted, duplicates };
  // Built as text around each event's canonical properties JSON, which validation already made: one array per
  // event, [customer, id, fingerprint, time, type, properties, late], which PostgreSQL reads three times faster
  // than objects through jsonb_to_recordset.
  const rows = `[${candidates
    .map(
      (e) =>
        `[${JSON.stringify(e.customer)},${JSON.stringify(e.id)},"${e.fingerprint}",` +
        `"${e.timeIso}",${JSON.stringify(e.type)},${e.propertiesJson},${late.has(e.index)}]`,
    )
    .join(',')}]`;
  let unclaimed: { c: string; i: string }[];
  try {
    unclaimed = await queryBound(em, claimStatement(!keysNew), [rows, now]);
  } catch (err) {
    if (keysNew && isClaimedBefore(err)) throw new KeyClaimedBeforeError();
    throw err;
  }
  if (unclaimed.length === 0) {
    for (const e of candidates) accepted.add(e.index);
    return { accepted, duplicates };
  }
  const lostKeys = new Set(unclaimed.map((r) => eventKey(r.c, r.i)));
  const lost = candidates.filter((e) => lostKeys.has(eventKey(e.customer, e.id)));
  for (const e of candidates) if (!lostKeys.has(eventKey(e.customer, e.id))) accepted.add(e.index);
  const existing = await queryBound<{ c: string; i: string; f: string }>(
    em,
    `select k.customer_external_id as c, k.event_id as i, k.fingerprint as f
       from usage_event_key k join jsonb_to_recordset($1::jsonb) as x(c text, i text)
         on k.customer_external_id = x.c and k.event_id = x.i`,
    [JSON.stringify(lost.map((e) => ({ c: e.customer, i: e.id })))],
  );
  const fingerprints = new Map(existing.map((r) => [eventKey(r.c, r.i), r.f]));
  for (const e of lost) {
    const stored = fingerprints.get(eventKey(e.customer, e.id));
    duplicates.set(e.index, stored === e.fingerprint ? 'same' : 'different');
  }
  return { accepted, duplicates };
}

/**
 * Creates the monthly partitions of usage_event covering [from, to) (idempotently). DDL takes no parameters: the
 * bounds, first instants of months computed here, are written into the statement.
 */
export async function ensureMonthlyPartitions(em: Em, from: Date, to: Date): Promise<void> {
  let month = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), 1));
  while (month.getTime() < to.getTime()) {
    const next = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1));
    const name = `usage_event_${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`;
    await queryBound(
      em,
      `create table if not exists ${name} partition of usage_event for values from ('${month.toISOString()}') to ('${next.toISOString()}')`,
      [],
    );
    month = next;
  }
}

/** The SQL conditions (on usage_event) of the events a meter selects (its type and property filters), bound to `params`. */
function meterSelection(meter: Meter, params: BoundParameters): string[] {
  const where = [`event_type = ${params.bind(meter.eventType)}`];
  for (const filter of meter.filters) {
    const property = `${params.bind(filter.property)}::text`;
    if (filter.operator === FilterOperator.IN) {
      where.push(
        `properties->>${property} in (select jsonb_array_elements_text(${params.bind(JSON.stringify(filter.values))}::jsonb))`,
      );
    } else if (filter.operator === FilterOperator.NOT_IN) {
      const values = params.bind(JSON.stringify(filter.values));
      where.push(
        `(properties->>${property} is null or properties->>${property} not in (select jsonb_array_elements_text(${values}::jsonb)))`,
      );
    } else {
      // A property set to null does not exist, as for meterSelects.
      where.push(`properties->>${property} is not null`);
    }
  }
  return where;
}

/**
 * The numeric value of an event's property `property` (an SQL text expression: a placeholder or a literal) exactly
 * as ingestion reads it (readEvent): a JSON number, or a string holding one between spaces (at most 100
 * characters), to 20 decimals, below 1e30 in magnitude; else null.
 */
export function numericReading(property: string): string {
  return `(select n from (select round(case jsonb_typeof(properties->${property}) when 'number' then (properties->>${property})::numeric
  when 'string' then case when length(btrim(properties->>${property})) <= ${MAX_NUMBER_LENGTH} and btrim(properties->>${property}) ~ '^-?(0|[1-9][0-9]*)([.][0-9]+)?([eE][-+]?[0-9]{1,4})?$'
                          then btrim(properties->>${property})::numeric end end, ${VALUE_DECIMALS}) as n) as reading
  where abs(n) < ${MAX_VALUE_MAGNITUDE.toFixed()})`;
}

/** The number of late events a meter counts for a customer in [from, to). */
export async function lateEventCount(em: Em, meter: Meter, customer: string, from: Date, to: Date): Promise<number> {
  const params = new BoundParameters();
  const rows = await queryBound<{ n: string }>(
    em,
    `select count(*) as n from usage_event
      where customer_external_id = ${params.bind(customer)} and ${meterSelection(meter, params).join(' and ')}
        and event_time >= ${params.bind(from)} and event_time < ${params.bind(to)} and late and not voided`,
    params.values,
  );
  return Number(rows[0]?.n ?? 0);
}

/** A meter's aggregate of one group of raw events, computed in SQL. */
export interface EdgeAggregate {
  /** The group-by values, in the meter's group_by order. */
  dimensions: (string | null)[];
  /** Sum (count, sum), maximum (max) or last value (latest). */
  value: Decimal;
  /** Events counted. */
  eventCount: number;
  /** For latest: the event whose value it is. */
  latest?: EventPoint;
  /** For unique count: the distinct values. */
  distinct: string[];
}

/**
 * A meter's aggregate per group of a customer's raw events in [from, to), in SQL (the partial hours at a
 * window's edges), without moving the events to the service.
 */
export async function edgeAggregates(
  em: Em,
  meter: Meter,
  customer: string,
  from: Date,
  to: Date,
): Promise<EdgeAggregate[]> {
  if (from.getTime() >= to.getTime()) return [];
  const params = new BoundParameters();
  const dims = meter.groupBy.map((dimension) => `properties->>${params.bind(dimension)}::text`);
  const unique = meter.aggregation === MeterAggregation.UNIQUE_COUNT;
  const count = meter.aggregation === MeterAggregation.COUNT;
  const latest = meter.aggregation === MeterAggregation.LATEST;
  // The value of each event: 1 for counts, the property's text for unique counts, its number otherwise.
  const valueSql = count
    ? '1::numeric'
    : unique
      ? `properties->>${params.bind(meter.valueProperty)}::text`
      : numericReading(`${params.bind(meter.valueProperty)}::text`);
  const rows = await queryBound<{
    dims: (string | null)[];
    total: string | null;
    maximum: string | null;
    last_value: string | null;
    last_time: Date | null;
    last_id: string | null;
    n: string;
    distinct_values: string[] | null;
  }>(
    em,
    // Only what the meter's aggregation needs: ordering the events (for latest) is the expensive part.
    `with selected as (
       select event_id, event_time, array[${dims.join(', ') || "''"}]::text[] as dims, ${valueSql} as v
         from usage_event
        where customer_external_id = ${params.bind(customer)} and event_time >= ${params.bind(from)}
          and event_time < ${params.bind(to)} and not voided and ${meterSelection(meter, params).join(' and ')}
     )
     select dims,
            ${unique || latest ? 'null::text' : 'sum(v::numeric)::text'} as total,
            ${meter.aggregation === MeterAggregation.MAX ? 'max(v::numeric)::text' : 'null::text'} as maximum,
            ${latest ? '((array_agg(v::text order by event_time desc, event_id collate "C" desc))[1])' : 'null::text'} as last_value,
            ${latest ? 'max(event_time)' : 'null::timestamptz'} as last_time,
            ${latest ? '((array_agg(event_id order by event_time desc, event_id collate "C" desc))[1])' : 'null::text'} as last_id,
            count(*) as n,
            ${unique ? 'array_agg(distinct v::text)' : 'null::text[]'} as distinct_values
       from selected where v is not null group by dims`,
    params.values,
  );
  return rows.map((r) => {
    const value =
      meter.aggregation === MeterAggregation.MAX
        ? r.maximum
        : meter.aggregation === MeterAggregation.LATEST
          ? r.last_value
          : unique
            ? '0'
            : r.total;
    return {
      dimensions: meter.groupBy.length === 0 ? [] : r.dims,
      value: new Decimal(value ?? '0'),
      eventCount: Number(r.n),
      latest: fromDbEventPoint(r.last_time, r.last_id),
      distinct: r.distinct_values ?? [],
    };
  });
}

/** Raw events of a customer and type in [from, to), not voided (for rebuilding an hour's rollups). */
export async function rawEvents(em: Em, customer: string, type: string, from: Date, to: Date) {
  if (from.getTime() >= to.getTime()) return [];
  const rows = await queryBound<{ event_id: string; event_time: Date; properties: JsonValue }>(
    em,
    `select event_id, event_time, properties from usage_event
      where customer_external_id = $1 and event_type = $2 and event_time >= $3 and event_time < $4 and not voided`,
    [customer, type, from, to],
  );
  return rows.map((r) => ({ id: r.event_id, time: new Date(r.event_time), properties: r.properties as JsonObject }));
}

/** What ListEvents asks for: a customer's events, optionally filtered, one page after a cursor. */
export interface EventListing {
  /** The customer's external id. */
  customer: string;
  /** Only events of this type, when set. */
  type?: string;
  /** Only events this meter selects (its type and filters), when set. */
  meter?: Meter;
  /** Only events at or after this time, when set. */
  from?: Date;
  /** Only events before this time, when set. */
  to?: Date;
  /** Whether voided events are listed too. */
  includeVoided: boolean;
  /** The time and id of the last event of the previous page. */
  after?: EventPoint;
  /** Most events to return. */
  limit: number;
}

/** A page of a customer's raw events, newest event time first (then greatest id), after `listing.after`. */
export async function listStoredEvents(em: Em, listing: EventListing): Promise<StoredUsageEvent[]> {
  const params = new BoundParameters();
  const where = [`customer_external_id = ${params.bind(listing.customer)}`];
  if (listing.type) where.push(`event_type = ${params.bind(listing.type)}`);
  if (listing.meter) where.push(...meterSelection(listing.meter, params));
  if (listing.from) where.push(`event_time >= ${params.bind(listing.from)}`);
  if (listing.to) where.push(`event_time < ${params.bind(listing.to)}`);
  if (!listing.includeVoided) where.push('not voided');
  if (listing.after) {
    where.push(
      `(event_time, event_id) < (${params.bind(listing.after.time)}::timestamptz, ${params.bind(listing.after.id)}::text)`,
    );
  }
  const rows = await queryBound<UsageEventRow>(
    em,
    `select event_id, event_type, event_time, properties, ingested_at, voided, late from usage_event
      where ${where.join(' and ')} order by event_time desc, event_id desc limit ${params.bind(listing.limit)}`,
    params.values,
  );
  return rows.map((row) => fromDbUsageEvent(listing.customer, row));
}

/** The stored event of a customer with this id, locked for the correction, if any. */
export async function findEventForUpdate(em: Em, customer: string, id: string): Promise<CorrectableEvent | undefined> {
  const [row] = await queryBound<UsageEventRow & { amendment_count: number; updated_at: Date | null }>(
    em,
    `select e.event_id, e.event_type, e.event_time, e.properties, e.ingested_at, e.voided, e.late, e.amendment_count,
            e.updated_at
       from usage_event_key k
       join usage_event e on e.customer_external_id = k.customer_external_id and e.event_id = k.event_id
                         and e.event_time = k.event_time
      where k.customer_external_id = $1 and k.event_id = $2
      for update of k`,
    [customer, id],
  );
  return row ? fromDbCorrectableEvent(customer, row) : undefined;
}

/** Marks an event voided. */
export async function saveEventVoided(em: Em, event: StoredUsageEvent, now: Date): Promise<void> {
  await queryBound(
    em,
    `update usage_event set voided = true, updated_at = $1
      where customer_external_id = $2 and event_id = $3 and event_time = $4`,
    [now, event.customer, event.id, event.time],
  );
}

/** Replaces an event's time and properties (moving it to another partition if its month changes). */
export async function saveEventAmendment(
  em: Em,
  event: StoredUsageEvent,
  change: { time: Date; properties: JsonObject; late: boolean },
  now: Date,
): Promise<void> {
  await queryBound(
    em,
    `update usage_event set event_time = $1, properties = $2::jsonb, late = $3, amendment_count = amendment_count + 1,
       updated_at = $4
      where customer_external_id = $5 and event_id = $6 and event_time = $7`,
    [change.time, JSON.stringify(change.properties), change.late, now, event.customer, event.id, event.time],
  );
  await queryBound(em, 'update usage_event_key set event_time = $1 where customer_external_id = $2 and event_id = $3', [
    change.time,
    event.customer,
    event.id,
  ]);
}
