// A meter's value for one customer over windows of time, per group: whole hours from the hour rollups, whole
// minutes of the partial hours at each window's edges (billing periods and local days start at any second)
// from the minute rollups, and the partial minutes left aggregated in SQL from raw events. Exact, and never a
// scan of the whole range's raw events.
import type { Em } from '@billing/kit/db';
import { Decimal } from '@billing/money';
import { type Meter, MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import { distinctValues, minuteRollupsSince, minuteRows, rollupRows } from '../adapter/rollup-read-repository.ts';
import { edgeAggregates } from '../adapter/usage-event-repository.ts';
import type { EventPoint } from '../domain/period-value.ts';
import type { BillingCalendar, BillingPeriod } from '../domain/periods.ts';

const HOUR = 3_600_000;
const MINUTE = 60_000;

/** A half-open window [start, end). */
export type Window = readonly [Date, Date];

/** What to aggregate. */
export interface UsageQuery {
  /** The meter. */
  meter: Meter;
  /** The customer's external id. */
  customer: string;
  /** Non-overlapping windows, in order. */
  windows: readonly Window[];
  /** When set, the windows are the parts of one range with gaps: one value per group for all (window 0). */
  oneValue?: boolean;
  /** Dimensions to group by (a subset of the meter's group_by); empty for one value per window. */
  groupBy: readonly string[];
  /** Accepted values per dimension (dimensions of the meter's group_by). */
  filters: readonly { dimension: string; values: readonly string[] }[];
}

/** One value of a query. */
export interface UsageValue {
  /** Index of the window in the query. */
  window: number;
  /** The group's values by dimension. */
  group: Record<string, string>;
  /** The value. */
  value: Decimal;
  /** Events counted. */
  eventCount: number;
  /** For latest meters: the event whose value it is (none without events). */
  latest?: EventPoint;
}

/** Accumulates one aggregation. */
class Accumulator {
  sum = new Decimal(0);
  max: Decimal | undefined;
  latest: (EventPoint & { value: Decimal }) | undefined;
  distinct = new Set<string>();
  eventCount = 0;

  add(value: Decimal, count: number, at?: EventPoint): void {
    this.eventCount += count;
    this.sum = this.sum.plus(value);
    if (this.max === undefined || value.greaterThan(this.max)) this.max = value;
    const last = this.latest;
    if (at && (!last || at.time > last.time || (at.time.getTime() === last.time.getTime() && at.id > last.id))) {
      this.latest = { ...at, value };
    }
  }

  result(aggregation: MeterAggregation): Decimal {
    switch (aggregation) {
      case MeterAggregation.MAX:
        return this.max ?? new Decimal(0);
      case MeterAggregation.LATEST:
        return this.latest?.value ?? new Decimal(0);
      case MeterAggregation.UNIQUE_COUNT:
        return new Decimal(this.distinct.size);
      default:
        return this.sum;
    }
  }
}

/** Runs a usage query. Windows without events give one value of 0 with an empty group. */
export async function aggregateUsage(em: Em, query: UsageQuery): Promise<UsageValue[]> {
  const { meter, customer, windows } = query;
  const first = windows[0];
  const last = windows[windows.length - 1];
  if (!first || !last) return [];
  const dimensions = meter.groupBy;
  const projected = query.groupBy.map((d) => dimensions.indexOf(d));
  const filters = query.filters.map((f) => ({ index: dimensions.indexOf(f.dimension), values: new Set(f.values) }));
  // Groups are stored as the JSON array of the meter's group_by values; project them onto the query's.
  const project = (group: string): string | undefined => {
    const values = JSON.parse(group) as (string | null)[];
    // An event without the dimension matches no filter value: NUL stands for it, which no caller can send.
    if (!filters.every((f) => f.values.has(values[f.index] ?? '\u0000'))) return undefined;
    return JSON.stringify(projected.map((i) => values[i] ?? null));
  };
  const accumulators = new Map<string, Accumulator>();
  const accumulator = (window: number, group: string) => {
    const key = `${query.oneValue ? 0 : window}|${group}`;
    let acc = accumulators.get(key);
    if (!acc) {
      acc = new Accumulator();
      accumulators.set(key, acc);
    }
    return acc;
  };
  // Whole hours of each window come from rollups; the rest from raw events.
  const wholeHours = windows.map(([start, end]) => {
    const from = Math.ceil(start.getTime() / HOUR) * HOUR;
    const to = Math.floor(end.getTime() / HOUR) * HOUR;
    return from < to ? ([from, to] as const) : undefined;
  });
  const windowOfHour = (hour: Date) =>
    wholeHours.findIndex((w) => w !== undefined && hour.getTime() >= w[0] && hour.getTime() < w[1]);
  for (const row of await rollupRows(em, meter.key, customer, first[0], last[1])) {
    const window = windowOfHour(row.bucket);
    const group = project(row.group);
    if (window < 0 || group === undefined) continue;
    accumulator(window, group).add(row.value, row.eventCount, row.latest);
  }
  if (meter.aggregation === MeterAggregation.UNIQUE_COUNT) {
    for (const row of await distinctValues(em, meter.key, customer, first[0], last[1])) {
      const window = windowOfHour(row.hour);
      const group = project(row.group);
      if (window >= 0 && group !== undefined) accumulator(window, group).distinct.add(row.value);
    }
  }
  // The partial hours at the windows' edges: whole minutes from the minute rollups (unique counts excepted, and
  // only since minute rollups exist), the partial minutes left from raw events.
  const edges: [number, Date, Date][] = [];
  windows.forEach(([start, end], i) => {
    const whole = wholeHours[i];
    if (!whole) edges.push([i, start, end]);
    else {
      if (start.getTime() < whole[0]) edges.push([i, start, new Date(whole[0])]);
      if (whole[1] < end.getTime()) edges.push([i, new Date(whole[1]), end]);
    }
  });
  const since =
    meter.aggregation === MeterAggregation.UNIQUE_COUNT
      ? Number.POSITIVE_INFINITY
      : (await minuteRollupsSince(em)).getTime();
  const minuteRanges: [number, Date, Date][] = [];
  const rawRanges: [number, Date, Date][] = [];
  for (const [window, from, to] of edges) {
    const first = Math.ceil(Math.max(from.getTime(), since) / MINUTE) * MINUTE;
    const last = Math.floor(to.getTime() / MINUTE) * MINUTE;
    if (first >= last || !Number.isFinite(first)) {
      rawRanges.push([window, from, to]);
      continue;
    }
    minuteRanges.push([window, new Date(first), new Date(last)]);
    if (from.getTime() < first) rawRanges.push([window, from, new Date(first)]);
    if (last < to.getTime()) rawRanges.push([window, new Date(last), to]);
  }
  const minutes = await minuteRows(
    em,
    meter.key,
    customer,
    minuteRanges.map(([, from, to]) => [from, to]),
  );
  for (const row of minutes) {
    const range = minuteRanges.find(([, from, to]) => row.bucket >= from && row.bucket < to);
    const group = project(row.group);
    if (!range || group === undefined) continue;
    accumulator(range[0], group).add(row.value, row.eventCount, row.latest);
  }
  for (const [window, from, to] of rawRanges) {
    for (const edge of await edgeAggregates(em, meter, customer, from, to)) {
      const group = project(JSON.stringify(edge.dimensions));
      if (group === undefined) continue;
      const acc = accumulator(window, group);
      for (const value of edge.distinct) acc.distinct.add(value);
      acc.add(edge.value, edge.eventCount, edge.latest);
    }
  }
  const values: UsageValue[] = [];
  (query.oneValue ? windows.slice(0, 1) : windows).forEach((_, window) => {
    const groups = [...accumulators.entries()]
      .filter(([key]) => key.startsWith(`${window}|`))
      .map(([key, acc]) => [key.slice(String(window).length + 1), acc] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (groups.length === 0) values.push({ window, group: {}, value: new Decimal(0), eventCount: 0 });
    for (const [group, acc] of groups) {
      const groupValues = JSON.parse(group) as (string | null)[];
      values.push({
        window,
        group: Object.fromEntries(query.groupBy.map((d, i) => [d, groupValues[i] ?? ''])),
        value: acc.result(meter.aggregation),
        eventCount: acc.eventCount,
        ...(meter.aggregation === MeterAggregation.LATEST && acc.latest
          ? { latest: { time: acc.latest.time, id: acc.latest.id } }
          : {}),
      });
    }
  });
  return values;
}

/**
 * A meter's value for a customer's billing period: the usage of the parts of its range it owns (where a period
 * taking precedence overlaps it, the usage is that period's), by `calendar` (knowing the customer's periods that
 * end after this one starts).
 */
export async function periodTotal(
  em: Em,
  meter: Meter,
  customer: string,
  period: BillingPeriod,
  calendar: BillingCalendar,
): Promise<UsageValue> {
  const windows = calendar.ownedRanges(customer, period);
  const [total] = await aggregateUsage(em, { meter, customer, windows, groupBy: [], filters: [], oneValue: true });
  return total ?? { window: 0, group: {}, value: new Decimal(0), eventCount: 0 };
}
