// A period's published value moved forward by what ingestion added, without recomputing it: counts and sums
// add, max keeps the larger, latest keeps the later event. Unique counts (and corrections) cannot be moved
// forward: they ask for a recompute.
import { Decimal } from '@billing/money';
import { MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';

/** A point in event order: event time, then id. */
export interface EventPoint {
  /** Event time. */
  time: Date;
  /** Event id. */
  id: string;
}

/** What batches added to one (customer, meter, period). */
export interface PeriodIncrement {
  /** The meter's aggregation. */
  aggregation: MeterAggregation;
  /** Sum (count, sum), maximum (max) or last value (latest) of what was added. */
  value: Decimal;
  /** Events added. */
  eventCount: number;
  /** For latest: the event whose value `value` is. */
  latest?: EventPoint;
  /** True when the period's value must be recomputed (unique counts, corrections). */
  recompute: boolean;
}

/** A period's value as last published. */
export interface PeriodState {
  /** The value (undefined before anything was published). */
  value: Decimal | undefined;
  /** Events counted. */
  eventCount: number;
  /** For latest: the event whose value it is. */
  latest?: EventPoint;
}

function later(a: EventPoint | undefined, b: EventPoint | undefined): boolean {
  if (!a) return false;
  if (!b) return true;
  return a.time.getTime() > b.time.getTime() || (a.time.getTime() === b.time.getTime() && a.id > b.id);
}

/** Two increments of the same (customer, meter, period) as one. */
export function mergeIncrements(a: PeriodIncrement, b: PeriodIncrement): PeriodIncrement {
  const recompute = a.recompute || b.recompute;
  const eventCount = a.eventCount + b.eventCount;
  switch (a.aggregation) {
    case MeterAggregation.MAX:
      return { ...a, recompute, eventCount, value: b.value.greaterThan(a.value) ? b.value : a.value };
    case MeterAggregation.LATEST:
      return later(b.latest, a.latest) ? { ...b, recompute, eventCount } : { ...a, recompute, eventCount };
    default:
      return { ...a, recompute, eventCount, value: a.value.plus(b.value) };
  }
}

/** The state after an increment (one that does not ask for a recompute). */
export function applyIncrement(state: PeriodState, increment: PeriodIncrement): PeriodState {
  const eventCount = state.eventCount + increment.eventCount;
  switch (increment.aggregation) {
    case MeterAggregation.MAX:
      return {
        value: state.value === undefined || increment.value.greaterThan(state.value) ? increment.value : state.value,
        eventCount,
      };
    case MeterAggregation.LATEST:
      return later(increment.latest, state.latest)
        ? { value: increment.value, eventCount, latest: increment.latest }
        : { ...state, eventCount };
    default:
      return { value: (state.value ?? new Decimal(0)).plus(increment.value), eventCount };
  }
}
