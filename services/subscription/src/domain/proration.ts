// Proration (docs/proration.md): what an in-advance charge costs for a slice of its billing period.
//
// The rule: the price accrues linearly over the period, to the millisecond, and what has accrued at an
// instant is rounded to 12 decimals (half even) once, for one unit. A slice [a, b) costs
// quantity x (accrued(b) - accrued(a)). Because the items of any partition of a period telescope, they sum
// exactly to the full-period price, whatever the rounding at each cut.
import { Decimal, formatDecimal, MAX_FRACTION_DIGITS, parseDecimal } from '@billing/money';

/** A half-open time range [start, end). */
export interface TimeRange {
  /** Inclusive start. */
  start: Date;
  /** Exclusive end. */
  end: Date;
}

/** What one unit of a charge has accrued at `at`, within its full period, for a full-period `unitAmount`. */
export function accrued(unitAmount: Decimal, full: TimeRange, at: Date): Decimal {
  const length = full.end.getTime() - full.start.getTime();
  if (length <= 0) throw new RangeError('a billing period is not empty');
  const elapsed = Math.min(Math.max(at.getTime() - full.start.getTime(), 0), length);
  if (elapsed === length) return unitAmount;
  return unitAmount.times(elapsed).dividedBy(length).toDecimalPlaces(MAX_FRACTION_DIGITS, Decimal.ROUND_HALF_EVEN);
}

/** The exact cost of `quantity` units of a charge over `slice` of its full period (unsigned). */
export function sliceAmount(unitAmount: string, quantity: string, full: TimeRange, slice: TimeRange): string {
  const unit = parseDecimal(unitAmount);
  const amount = parseDecimal(quantity).times(accrued(unit, full, slice.end).minus(accrued(unit, full, slice.start)));
  return formatDecimal(amount);
}

/** One in-advance charge line of a subscription's terms, the unit that proration works on. */
export interface ProratedLine {
  /** The plan the charge belongs to. */
  planKey: string;
  /** The plan version. */
  planVersion: number;
  /** The charge key. */
  chargeKey: string;
  /** The add-on key, or empty for plan charges. */
  addonKey: string;
  /** The full-period amount of one unit, after contract overrides. */
  unitAmount: string;
  /** The number of units (seats, or add-ons). */
  quantity: string;
}

/** A signed proration of one line over a slice, before it gets an id and the subscription's context. */
export interface Proration {
  /** The line prorated (its quantity is the quantity added or removed). */
  line: ProratedLine;
  /** The slice covered. */
  slice: TimeRange;
  /** The exact signed amount. */
  amount: string;
  /** +1 for a charge, -1 for a credit. */
  sign: 1 | -1;
}

function prorateLine(line: ProratedLine, sign: 1 | -1, full: TimeRange, slice: TimeRange): Proration | undefined {
  if (parseDecimal(line.quantity).isZero() || slice.end.getTime() <= slice.start.getTime()) return undefined;
  const unsigned = sliceAmount(line.unitAmount, line.quantity, full, slice);
  const amount = sign < 0 ? formatDecimal(parseDecimal(unsigned).negated()) : unsigned;
  return { line, slice, amount, sign };
}

const lineKey = (l: ProratedLine) => `${l.addonKey}/${l.chargeKey}/${l.unitAmount}`;

/**
 * The prorations of moving from `before` to `after` at `at`, for the rest of `full`.
 * - `replace` (a plan change, a cancellation): every old line is credited and every new line charged.
 * - `difference` (seats, add-ons): lines are matched by add-on, charge and unit amount, and only the change in
 *   quantity is charged or credited.
 */
export function prorateChange(
  before: readonly ProratedLine[],
  after: readonly ProratedLine[],
  full: TimeRange,
  at: Date,
  mode: 'replace' | 'difference',
): Proration[] {
  const slice = { start: at, end: full.end };
  const out: (Proration | undefined)[] = [];
  if (mode === 'replace') {
    for (const line of before) out.push(prorateLine(line, -1, full, slice));
    for (const line of after) out.push(prorateLine(line, 1, full, slice));
    return out.filter((p) => p !== undefined);
  }
  const old = new Map(before.map((l) => [lineKey(l), l]));
  const keys = new Set([...before.map(lineKey), ...after.map(lineKey)]);
  const now = new Map(after.map((l) => [lineKey(l), l]));
  for (const key of keys) {
    const from = old.get(key);
    const to = now.get(key);
    const line = to ?? from;
    if (!line) continue;
    const delta = parseDecimal(to?.quantity ?? '0').minus(parseDecimal(from?.quantity ?? '0'));
    if (delta.isZero()) continue;
    const sign = delta.isPositive() ? 1 : -1;
    out.push(prorateLine({ ...line, quantity: formatDecimal(delta.abs()) }, sign, full, slice));
  }
  return out.filter((p) => p !== undefined);
}
