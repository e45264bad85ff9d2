// The billing calendar: where a subscription's periods start and end, in the customer's time zone.
//
// Rules (docs/billing-calendar.md):
// - Every boundary is computed from the anchor, never from the previous boundary, so a day clamped to a
//   short month comes back afterwards: Jan 31 -> Feb 28 -> Mar 31, and a Feb 29 anniversary is Feb 28 in
//   other years and Feb 29 again in leap years.
// - Anniversary: periods start at the local day and time of the subscription's start. Day of month: they
//   start at local midnight of that day (clamped to the month's length); the first period runs from the start
//   to the first such midnight after it (a stub).
// - Boundaries are local wall times converted to instants in the customer's zone, across DST changes (a time
//   a DST change skips becomes the end of the gap), so periods are not all the same number of hours.
import { fromLocal, type LocalDateTime, toLocal } from '@billing/kit/time-zone';

/** Length of a billing period. */
export type BillingInterval = 'month' | 'quarter' | 'year';

/** How periods are aligned. */
export type BillingAnchor = { kind: 'anniversary' } | { kind: 'day_of_month'; day: number };

/** A subscription's calendar: when it started, in which zone, how long its periods are, how they align. */
export interface BillingSchedule {
  /** The subscription's start. */
  start: Date;
  /** The customer's IANA time zone. */
  zone: string;
  /** Period length. */
  interval: BillingInterval;
  /** Alignment. */
  anchor: BillingAnchor;
}

/** A billing period [start, end) and its index (0 for the first). */
export interface BillingPeriod {
  /** 0 for the first period. */
  index: number;
  /** Inclusive start. */
  start: Date;
  /** Exclusive end. */
  end: Date;
}

const MONTHS: Record<BillingInterval, number> = { month: 1, quarter: 3, year: 12 };

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

// The local wall time `months` months after (year, month) on `day` (clamped) at the given time of day.
function shifted(base: LocalDateTime, months: number, day: number): LocalDateTime {
  const total = base.year * 12 + (base.month - 1) + months;
  const year = Math.floor(total / 12);
  const month = (total % 12) + 1;
  return { ...base, year, month, day: Math.min(day, daysInMonth(year, month)) };
}

/** The instant the period of index `n` starts (n >= 0). */
export function boundary(schedule: BillingSchedule, n: number): Date {
  const step = MONTHS[schedule.interval];
  const local = toLocal(schedule.start, schedule.zone);
  if (schedule.anchor.kind === 'anniversary') {
    return n === 0 ? schedule.start : fromLocal(shifted(local, n * step, local.day), schedule.zone);
  }
  if (n === 0) return schedule.start;
  const day = schedule.anchor.day;
  const midnight = { ...local, hour: 0, minute: 0, second: 0 };
  const sameMonth = fromLocal(shifted(midnight, 0, day), schedule.zone);
  // A start on an anchor midnight begins full periods at once.
  if (sameMonth.getTime() === schedule.start.getTime())
    return fromLocal(shifted(midnight, n * step, day), schedule.zone);
  // Otherwise a stub runs to the first anchor midnight after the start, then every `step` months from it.
  const first = sameMonth.getTime() > schedule.start.getTime() ? 0 : 1;
  return fromLocal(shifted(midnight, first + (n - 1) * step, day), schedule.zone);
}

/** The period of index `n`. */
export function periodAt(schedule: BillingSchedule, n: number): BillingPeriod {
  if (!Number.isInteger(n) || n < 0) throw new RangeError('a period index is a whole number from 0');
  return { index: n, start: boundary(schedule, n), end: boundary(schedule, n + 1) };
}

/** The period containing `time` (which must not be before the start). */
export function periodContaining(schedule: BillingSchedule, time: Date): BillingPeriod {
  if (time.getTime() < schedule.start.getTime()) throw new RangeError('the time is before the schedule starts');
  // Estimate from the month difference, then step to the right period (at most a couple of steps).
  const a = toLocal(schedule.start, schedule.zone);
  const b = toLocal(time, schedule.zone);
  let n = Math.max(0, Math.floor(((b.year - a.year) * 12 + (b.month - a.month)) / MONTHS[schedule.interval]) - 1);
  while (n > 0 && boundary(schedule, n).getTime() > time.getTime()) n--;
  while (boundary(schedule, n + 1).getTime() <= time.getTime()) n++;
  return periodAt(schedule, n);
}

/**
 * For a day-of-month anchor whose first period is a stub (the start is not on an anchor midnight), the full
 * calendar period the stub is the tail of, which its proration is computed against; undefined otherwise.
 */
export function stubFullPeriod(schedule: BillingSchedule): { start: Date; end: Date } | undefined {
  if (schedule.anchor.kind !== 'day_of_month') return undefined;
  const end = boundary(schedule, 1);
  const local = toLocal(end, schedule.zone);
  const start = fromLocal(shifted(local, -MONTHS[schedule.interval], schedule.anchor.day), schedule.zone);
  return start.getTime() === schedule.start.getTime() ? undefined : { start, end };
}
