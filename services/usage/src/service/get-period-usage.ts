// GetPeriodUsage: the exact value of a meter for one customer over one period (what invoicing rates), with how
// many events count in it and how many of those arrived late.
import type { Em } from '@billing/kit/db';
import { Decimal } from '@billing/money';
import { lateEventCount } from '../adapter/usage-event-repository.ts';
import type { PeriodUsageInput } from '../domain/validate.ts';
import { aggregateUsage } from './aggregate-usage.ts';
import { requireMeter } from './require-meter.ts';

/** A meter's usage over a period. */
export interface PeriodUsage {
  /** The value. */
  value: Decimal;
  /** Events counted. */
  eventCount: number;
  /** Those of them that were late (isLate) when they were stored or last amended. */
  lateEventCount: number;
}

/** The usage of a customer's meter over [start, end); NOT_FOUND for an unknown meter. */
export async function getPeriodUsage(em: Em, input: PeriodUsageInput): Promise<PeriodUsage> {
  const meter = await requireMeter(em, input.meterKey);
  const [total] = await aggregateUsage(em, {
    meter,
    customer: input.customer,
    windows: [[input.start, input.end]],
    groupBy: [],
    filters: [],
  });
  return {
    value: total?.value ?? new Decimal(0),
    eventCount: total?.eventCount ?? 0,
    lateEventCount: await lateEventCount(em, meter, input.customer, input.start, input.end),
  };
}
