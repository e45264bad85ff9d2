// QueryUsage: a meter's usage for one customer over a range split into windows (UTC hours, or days or months of
// a time zone), per group of the meter's dimensions, filtered on them.
import type { Em } from '@billing/kit/db';
import { checkDimensions, type UsageQueryInput } from '../domain/validate.ts';
import { usageWindows } from '../domain/windows.ts';
import { aggregateUsage, type UsageValue, type Window } from './aggregate-usage.ts';
import { requireMeter } from './require-meter.ts';

/** One value of a query, with its window. */
export interface UsageBucket extends UsageValue {
  /** The window [start, end), clipped to the range. */
  range: Window;
}

/** Runs a usage query; NOT_FOUND for an unknown meter, INVALID_ARGUMENT for dimensions it does not have. */
export async function queryUsage(em: Em, input: UsageQueryInput): Promise<UsageBucket[]> {
  const meter = await requireMeter(em, input.meterKey);
  checkDimensions(meter, input);
  const windows = usageWindows(input.start, input.end, input.window, input.timeZone);
  const values = await aggregateUsage(em, {
    meter,
    customer: input.customer,
    windows,
    groupBy: input.groupBy,
    filters: input.filters,
  });
  return values.map((value) => ({ ...value, range: windows[value.window] ?? [input.start, input.end] }));
}
