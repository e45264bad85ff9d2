// Conversions between the usage service's rows and its domain objects: meters (their protobuf JSON), billing
// periods, stored events, pending changes and published values. Rows come from MikroORM (meters) or from
// set-wise SQL (the rest), as PostgreSQL's driver returns them: numeric and bigint columns as text.

import { Decimal } from '@billing/money';
import { type Meter, MeterAggregation, MeterSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { fromJson, type JsonObject, type JsonValue, toJson } from '@bufbuild/protobuf';
import type { PendingChange } from '../domain/pending-periods.ts';
import type { EventPoint, PeriodState, PublishedKey } from '../domain/period-value.ts';
import type { KnownPeriod } from '../domain/periods.ts';
import type { CorrectableEvent, StoredUsageEvent } from '../domain/usage-event.ts';

/** The aggregations by the name rows store them under. */
const AGGREGATION_OF_NAME: Record<string, MeterAggregation> = {
  count: MeterAggregation.COUNT,
  sum: MeterAggregation.SUM,
  max: MeterAggregation.MAX,
  unique_count: MeterAggregation.UNIQUE_COUNT,
  latest: MeterAggregation.LATEST,
};

const NAME_OF_AGGREGATION: Record<number, string> = Object.fromEntries(
  Object.entries(AGGREGATION_OF_NAME).map(([name, aggregation]) => [aggregation, name]),
);

/** The name an aggregation is stored under (the rollup SQL merges by it). */
export function toDbAggregation(aggregation: MeterAggregation): string {
  return NAME_OF_AGGREGATION[aggregation] ?? 'sum';
}

/** The aggregation a stored name stands for. */
export function fromDbAggregation(name: string): MeterAggregation {
  return AGGREGATION_OF_NAME[name] ?? MeterAggregation.SUM;
}

/** A meter from its row (its archived flag from the column, which the catalog's archive event sets). */
export function fromDbMeter(row: { body: JsonValue; archived: boolean }): Meter {
  const meter = fromJson(MeterSchema, row.body);
  meter.archived = row.archived;
  return meter;
}

/** The row of a meter saved at `now` from catalog event number `catalogSeq` of its sequence (if known). */
export function toDbMeter(meter: Meter, now: Date, catalogSeq: number | undefined) {
  return {
    key: meter.key,
    eventType: meter.eventType,
    body: toJson(MeterSchema, meter),
    archived: meter.archived,
    updatedAt: now,
    catalogSeq: catalogSeq ?? null,
  };
}

/** The event a latest value comes from, from its time and id columns (none when the time is null). */
export function fromDbEventPoint(time: Date | null, id: string | null): EventPoint | undefined {
  return time ? { time: new Date(time), id: id ?? '' } : undefined;
}

/** A row of billing_period. */
export interface BillingPeriodRow {
  subscription_id: string;
  period_start: Date;
  period_end: Date;
  customer_external_id: string;
  closed: boolean;
}

/** A known subscription period from its row. */
export function fromDbKnownPeriod(row: BillingPeriodRow): KnownPeriod {
  return {
    subscriptionId: row.subscription_id,
    start: new Date(row.period_start),
    end: new Date(row.period_end),
    customer: row.customer_external_id,
    closed: row.closed,
  };
}

/** A usage_event row as the listing reads it. */
export interface UsageEventRow {
  event_id: string;
  event_type: string;
  event_time: Date;
  properties: JsonValue;
  ingested_at: Date;
  voided: boolean;
  late: boolean;
}

/** A stored event of `customer` from its row. */
export function fromDbUsageEvent(customer: string, row: UsageEventRow): StoredUsageEvent {
  return {
    id: row.event_id,
    customer,
    type: row.event_type,
    time: new Date(row.event_time),
    properties: row.properties as JsonObject,
    ingestedAt: new Date(row.ingested_at),
    voided: row.voided,
    late: row.late,
  };
}

/** A stored event of `customer` with its correction history, from its row. */
export function fromDbCorrectableEvent(
  customer: string,
  row: UsageEventRow & { amendment_count: number; updated_at: Date | null },
): CorrectableEvent {
  return {
    ...fromDbUsageEvent(customer, row),
    amendmentCount: row.amendment_count,
    updatedAt: row.updated_at ? new Date(row.updated_at) : undefined,
  };
}

/**
 * A row of usage_pending_delta, or one the rollup log's fold returns in its shape: what was added to a
 * (customer, meter, billing period), or a recompute.
 */
export interface PendingRow {
  customer_external_id: string;
  meter_key: string;
  period_start: Date;
  period_end: Date;
  last_ingest_at: Date;
  event_count: string;
  aggregation: string;
  value: string;
  latest_time: Date | null;
  latest_event_id: string | null;
  recompute: boolean;
  subscription_id: string;
  period_closed: boolean;
  late_event_ids: string[];
  correction: boolean;
}

/** A pending change from its row (each row gets a period object of its own: merging updates it). */
export function fromDbPendingChange(row: PendingRow): PendingChange {
  return {
    customer: row.customer_external_id,
    meterKey: row.meter_key,
    period: {
      start: new Date(row.period_start),
      end: new Date(row.period_end),
      subscriptionId: row.subscription_id,
      closed: row.period_closed,
    },
    lastIngest: new Date(row.last_ingest_at),
    increment: {
      aggregation: fromDbAggregation(row.aggregation),
      value: new Decimal(row.value),
      eventCount: Number(row.event_count),
      latest: fromDbEventPoint(row.latest_time, row.latest_event_id),
      recompute: row.recompute,
    },
    lateEventIds: row.late_event_ids,
    correction: row.correction,
  };
}

/** A pending change as a record of the JSON that usage_pending_delta is filled from (see savePendingChanges). */
export function toDbPendingChange(change: PendingChange) {
  const { increment, period } = change;
  return {
    c: change.customer,
    m: change.meterKey,
    s: period.start.toISOString(),
    e: period.end.toISOString(),
    n: increment.eventCount,
    li: change.lastIngest.toISOString(),
    a: toDbAggregation(increment.aggregation),
    v: increment.value.toFixed(),
    lt: increment.latest?.time.toISOString() ?? null,
    lid: increment.latest?.id ?? null,
    r: increment.recompute,
    sub: period.subscriptionId,
    pc: period.closed,
    ids: change.lateEventIds,
    cor: change.correction,
  };
}

/** The key columns of a usage_published_value row. */
export interface PublishedKeyRow {
  customer_external_id: string;
  meter_key: string;
  period_start: Date;
  subscription_id: string;
}

/** A published key from its row. */
export function fromDbPublishedKey(row: PublishedKeyRow): PublishedKey {
  return {
    customer: row.customer_external_id,
    meterKey: row.meter_key,
    periodStart: new Date(row.period_start),
    subscriptionId: row.subscription_id,
  };
}

/** A published key as the JSON array statements match rows by: [customer, meter, period start, subscription]. */
export function toDbPublishedKey(key: PublishedKey): [string, string, string, string] {
  return [key.customer, key.meterKey, key.periodStart.toISOString(), key.subscriptionId];
}

/** A usage_published_value row. */
export interface PublishedValueRow extends PublishedKeyRow {
  value: string;
  event_count: string;
  latest_time: Date | null;
  latest_event_id: string | null;
}

/** A published state from its row. */
export function fromDbPublishedState(row: PublishedValueRow): PeriodState {
  return {
    value: new Decimal(row.value),
    eventCount: Number(row.event_count),
    latest: fromDbEventPoint(row.latest_time, row.latest_event_id),
  };
}

/** A rollup row (hour or minute) as readers use it. */
export interface RollupRow {
  /** The bucket's start (hour or minute). */
  bucket: Date;
  /** The group-by values, JSON. */
  group: string;
  /** Sum, maximum or latest value of the bucket. */
  value: Decimal;
  /** Events counted. */
  eventCount: number;
  /** For latest: the event whose value it is. */
  latest: EventPoint | undefined;
}

/** The columns readers select of a rollup row (the hour or minute as `bucket`). */
export interface RollupRowColumns {
  bucket: Date;
  group_key: string;
  value: string;
  event_count: string;
  latest_time: Date | null;
  latest_event_id: string | null;
}

/** A rollup row from the columns readers select. */
export function fromDbRollupRow(row: RollupRowColumns): RollupRow {
  return {
    bucket: new Date(row.bucket),
    group: row.group_key,
    value: new Decimal(row.value),
    eventCount: Number(row.event_count),
    latest: fromDbEventPoint(row.latest_time, row.latest_event_id),
  };
}
