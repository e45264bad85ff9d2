// Rollups: what a batch of accepted events adds to each (meter, customer, group, minute) bucket, merged in
// memory first so that each bucket is written once per batch (the compactor folds minutes into hours). Count and sum add, max keeps the largest,
// latest keeps the value of the last event by time (then by id), unique count records distinct values.

import { Decimal } from '@billing/money';
import { type Meter, MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import { meterSelects, readEvent } from './meter.ts';
import type { ValidEvent } from './usage-event.ts';

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
  /** Start of the bucket: the UTC minute (or the billing period, for period increments). */
  bucket: Date;
  /** Sum (count, sum), maximum (max) or last value (latest) of the batch's events in the bucket. */
  value: Decimal;
  /** Events added. */
  eventCount: number;
  /** For latest: the time and id of the event whose value it is. */
  latest?: { time: Date; id: string };
  /** For unique count: the distinct values seen. */
  distinct: Set<string>;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;

/** The start of the UTC hour containing `time`. */
export function hourOf(time: Date): Date {
  return new Date(Math.floor(time.getTime() / HOUR) * HOUR);
}

/** The start of the UTC minute containing `time`. */
export function minuteOf(time: Date): Date {
  return new Date(Math.floor(time.getTime() / MINUTE) * MINUTE);
}

function laterThan(a: { time: Date; id: string }, b: { time: Date; id: string } | undefined): boolean {
  if (!b) return true;
  return a.time.getTime() > b.time.getTime() || (a.time.getTime() === b.time.getTime() && a.id > b.id);
}

/** The events that a meter selecting them cannot read (no value, or not a number): index and why. */
export function unreadableEvents(events: readonly ValidEvent[], meters: readonly Meter[]): Map<number, string> {
  const unreadable = new Map<number, string>();
  for (const event of events) {
    for (const meter of meters) {
      if (!meterSelects(meter, event.type, event.properties)) continue;
      const reading = readEvent(meter, event.properties);
      if (typeof reading === 'string') unreadable.set(event.index, `meter ${meter.key}: ${reading}`);
    }
  }
  return unreadable;
}

/**
 * The rollup deltas of readable `events` for `meters`, sorted by bucket key. Buckets are UTC minutes per group
 * by default; `bucketOf` and `grouped` give other buckets (billing periods, all groups together).
 */
export function rollupDeltas(
  events: readonly ValidEvent[],
  meters: readonly Meter[],
  bucketOf: (event: ValidEvent) => Date = (event) => minuteOf(event.time),
  grouped = true,
): RollupDelta[] {
  const buckets = new Map<string, RollupDelta>();
  for (const event of events) {
    for (const meter of meters) {
      if (!meterSelects(meter, event.type, event.properties)) continue;
      const reading = readEvent(meter, event.properties);
      if (typeof reading === 'string') continue;
      const start = bucketOf(event);
      const group = grouped ? reading.group : '';
      const key = JSON.stringify([meter.key, event.customer, group, start.getTime()]);
      let bucket = buckets.get(key);
      if (!bucket) {
        bucket = {
          meterKey: meter.key,
          aggregation: meter.aggregation,
          customer: event.customer,
          group,
          bucket: start,
          value: meter.aggregation === MeterAggregation.MAX ? reading.value : new Decimal(0),
          eventCount: 0,
          distinct: new Set(),
        };
        buckets.set(key, bucket);
      }
      bucket.eventCount++;
      switch (meter.aggregation) {
        case MeterAggregation.MAX:
          if (reading.value.greaterThan(bucket.value)) bucket.value = reading.value;
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
          bucket.value = bucket.value.plus(reading.value);
      }
    }
  }
  return [...buckets.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, d]) => d);
}
