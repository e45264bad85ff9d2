// The exact value of a meter for one customer over a period: whole hours from the rollups, the partial hours
// at the edges (billing periods start at any second) from raw events.
import type { Em } from '@billing/kit/db';
import { Decimal } from '@billing/money';
import { type Meter, MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { JsonObject } from '@bufbuild/protobuf';
import { distinctValues, rawEvents, rollupRows } from '../adapter/usage-store.ts';
import { meterSelects, readEvent } from '../domain/meter.ts';

const HOUR = 3_600_000;

/** A meter's value over a period, and how many events made it. */
export interface PeriodValue {
  /** The value (0 when no event counted). */
  value: Decimal;
  /** Events counted. */
  eventCount: number;
}

/** The value of `meter` for `customer` over [start, end). */
export async function periodUsage(
  em: Em,
  meter: Meter,
  customer: string,
  start: Date,
  end: Date,
): Promise<PeriodValue> {
  const firstHour = new Date(Math.ceil(start.getTime() / HOUR) * HOUR);
  const lastHour = new Date(Math.floor(end.getTime() / HOUR) * HOUR);
  const wholeHours = firstHour.getTime() < lastHour.getTime();
  const edges: [Date, Date][] = wholeHours
    ? [
        [start, firstHour],
        [lastHour, end],
      ]
    : [[start, end]];

  let value = new Decimal(0);
  let eventCount = 0;
  let latest: { time: Date; id: string } | undefined;
  let max: Decimal | undefined;
  const distinct = new Set<string>();
  const take = (v: Decimal, count: number, at?: { time: Date; id: string }) => {
    eventCount += count;
    if (meter.aggregation === MeterAggregation.MAX) max = max === undefined || v.greaterThan(max) ? v : max;
    else if (meter.aggregation === MeterAggregation.LATEST) {
      if (
        at &&
        (!latest || at.time > latest.time || (at.time.getTime() === latest.time.getTime() && at.id > latest.id))
      ) {
        latest = at;
        value = v;
      }
    } else value = value.plus(v);
  };

  if (wholeHours) {
    for (const row of await rollupRows(em, meter.key, customer, firstHour, lastHour))
      take(row.value, row.eventCount, row.latest);
    if (meter.aggregation === MeterAggregation.UNIQUE_COUNT) {
      for (const v of await distinctValues(em, meter.key, customer, firstHour, lastHour)) distinct.add(v);
    }
  }
  for (const [from, to] of edges) {
    for (const event of await rawEvents(em, customer, meter.eventType, from, to)) {
      const properties = event.properties as JsonObject;
      if (!meterSelects(meter, meter.eventType, properties)) continue;
      const reading = readEvent(meter, properties);
      if (typeof reading === 'string') continue;
      if (reading.distinct !== undefined) distinct.add(reading.distinct);
      take(reading.value, 1, { time: event.time, id: event.id });
    }
  }
  if (meter.aggregation === MeterAggregation.UNIQUE_COUNT) value = new Decimal(distinct.size);
  if (meter.aggregation === MeterAggregation.MAX) value = max ?? new Decimal(0);
  return { value, eventCount };
}
