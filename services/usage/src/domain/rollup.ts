// Rollups: what a batch of accepted events adds to each (meter, customer, group, minute) bucket, split by
// billing period, merged in memory first so that each bucket is written once per batch (the delta publisher
// folds minutes into hours, and periods into what it publishes). Count and sum add, max keeps the largest,
// latest keeps the value of the last event by time (then by id), unique count records distinct values.

import { Decimal } from '@billing/money';
import { type Meter, MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import { type Amount, type MeterReading, meterSelects, readEvent } from './meter.ts';
import type { BillingPeriod } from './periods.ts';
import type { MeteredEvent } from './usage-event.ts';

/** What a batch adds to one bucket. */
export interface RollupDelta {
  /** The meter. */
  meterKey: string;
  /** Its aggregation. */
  aggregation: MeterAggregation;
  /** The customer's external id. */
  customer: string;
  /** The group-by values, JSON. */
  group: string;
  /** Start of the bucket: the UTC minute. */
  bucket: Date;
  /** The billing period the bucket's events fall in, when the batch was split by period. */
  period?: BillingPeriod;
  /** The late events among them (at most MAX_LATE_IDS). */
  lateEventIds: string[];
  /** Sum (count, sum), maximum (max) or last value (latest) of the batch's events in the bucket. */
  value: Amount;
  /** Events added. */
  eventCount: number;
  /** For latest: the time and id of the event whose value it is. */
  latest?: { time: Date; id: string };
  /** For unique count: the distinct values seen. */
  distinct: Set<string>;
}

const MINUTE = 60_000;
/** Most late event ids carried per bucket, pending period and message. */
export const MAX_LATE_IDS = 1_000;
const HOUR = 3_600_000;

/** The start of the UTC hour containing `time`. */
export function hourOf(time: Date): Date {
  return new Date(Math.floor(time.getTime() / HOUR) * HOUR);
}

function laterThan(a: { time: Date; id: string }, b: { time: Date; id: string } | undefined): boolean {
  if (!b) return true;
  return a.time.getTime() > b.time.getTime() || (a.time.getTime() === b.time.getTime() && a.id > b.id);
}

/** A meter's reading of an event it selects. */
export interface EventReading {
  /** The event. */
  event: MeteredEvent;
  /** The meter. */
  meter: Meter;
  /** What the meter reads of it. */
  reading: MeterReading;
}

/**
 * What `meters` read of `events`: the readings of every meter selecting an event, and the events a meter
 * selecting them cannot read (no value, or not a number), by index with why.
 */
export function readEvents(
  events: readonly MeteredEvent[],
  meters: readonly Meter[],
): { readings: EventReading[]; unreadable: Map<number, string> } {
  const readings: EventReading[] = [];
  const unreadable = new Map<number, string>();
  for (const event of events) {
    for (const meter of meters) {
      if (!meterSelects(meter, event.type, event.properties)) continue;
      const reading = readEvent(meter, event.properties);
      if (typeof reading === 'string') unreadable.set(event.index, `meter ${meter.key}: ${reading}`);
      else readings.push({ event, meter, reading });
    }
  }
  return { readings, unreadable };
}

/** How a batch's buckets are split by billing period (ingestion) or not (a correction's rebuild). */
export interface PeriodSplit {
  /** The billing period of an event. */
  periodOf(event: MeteredEvent): BillingPeriod;
  /** Indexes of the late events (in closed periods). */
  late: ReadonlySet<number>;
}

const asDecimal = (amount: Amount): Decimal => (typeof amount === 'number' ? new Decimal(amount) : amount);

/** a + b, as a number while the sum is a safe integer (exact), else as a decimal. */
function add(a: Amount, b: Amount): Amount {
  if (typeof a === 'number' && typeof b === 'number') {
    const sum = a + b;
    // Past 2^53 a sum of safe integers may be rounded, but it is then no safe integer either.
    if (Number.isSafeInteger(sum)) return sum;
  }
  return asDecimal(a).plus(asDecimal(b));
}

function greater(a: Amount, b: Amount): boolean {
  return typeof a === 'number' && typeof b === 'number' ? a > b : asDecimal(a).greaterThan(asDecimal(b));
}

/** The rollup deltas of `readings`, per UTC minute and group (and billing period, when split). */
export function rollupDeltas(readings: readonly EventReading[], split?: PeriodSplit): RollupDelta[] {
  const buckets = new Map<string, RollupDelta>();
  for (const { event, meter, reading } of readings) {
    const period = split?.periodOf(event);
    const minute = Math.floor(event.time.getTime() / MINUTE) * MINUTE;
    const key = `${meter.key}\u0000${event.customer}\u0000${reading.group}\u0000${minute}\u0000${period?.start.getTime()}`;
    let bucket = buckets.get(key);
    if (!bucket) {
      bucket = {
        meterKey: meter.key,
        aggregation: meter.aggregation,
        customer: event.customer,
        group: reading.group,
        bucket: new Date(minute),
        period,
        value: meter.aggregation === MeterAggregation.MAX ? reading.value : 0,
        eventCount: 0,
        distinct: new Set(),
        lateEventIds: [],
      };
      buckets.set(key, bucket);
    }
    if (split?.late.has(event.index) && bucket.lateEventIds.length < MAX_LATE_IDS) bucket.lateEventIds.push(event.id);
    bucket.eventCount++;
    switch (meter.aggregation) {
      case MeterAggregation.MAX:
        if (greater(reading.value, bucket.value)) bucket.value = reading.value;
        break;
      case MeterAggregation.LATEST: {
        const candidate = { time: event.time, id: event.id };
        if (laterThan(candidate, bucket.latest)) {
          bucket.latest = candidate;
          bucket.value = reading.value;
        }
        break;
      }
      case MeterAggregation.UNIQUE_COUNT:
        if (reading.distinct !== undefined) bucket.distinct.add(reading.distinct);
        break;
      default:
        bucket.value = add(bucket.value, reading.value);
    }
  }
  return [...buckets.values()];
}
