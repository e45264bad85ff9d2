// A period's published value moved forward by what ingestion added, without recomputing it: counts and sums
// add, max keeps the larger, latest keeps the later event. Unique counts (and corrections) cannot be moved
// forward: they ask for a recompute.
import { Decimal } from '@billing/money';
import { MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { BillingPeriod } from './periods.ts';

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

/** A (customer, meter, period) whose value is published. */
export interface PublishedKey {
  /** The customer's external id. */
  customer: string;
  /** The meter. */
  meterKey: string;
  /** The period's start. */
  periodStart: Date;
  /** The period's subscription ('' for a calendar month): periods of several may start together. */
  subscriptionId: string;
}

/** The published key of a customer's meter over `period` (a calendar month and a subscription period may start together). */
export function periodKey(customer: string, meterKey: string, period: BillingPeriod): PublishedKey {
  return { customer, meterKey, periodStart: period.start, subscriptionId: period.subscriptionId };
}

/** A published key as a map key. */
export const publishedKeyOf = (key: PublishedKey): string =>
  JSON.stringify([key.customer, key.meterKey, key.periodStart.getTime(), key.subscriptionId]);

/** The published state of `key` among `states` (by publishedKeyOf), or the state of a period never published. */
export function publishedState(states: ReadonlyMap<string, PeriodState>, key: PublishedKey): PeriodState {
  return states.get(publishedKeyOf(key)) ?? { value: undefined, eventCount: 0 };
}

/** A change of a published value (a correction's). */
export interface PublishedMove {
  /** The (customer, meter, period). */
  key: PublishedKey;
  /** The change of its value. */
  delta: Decimal;
  /** The change of its event count. */
  eventCountDelta: number;
}
