// Splitting a total across lines without losing or inventing a cent: each line gets its exact share rounded
// down to minor units, and the minor units left over go to the lines with the largest remainders (ties to
// the earliest line).
import { minorUnits } from './currency.ts';
import { Decimal, parseDecimal } from './decimal.ts';
import { Money } from './money.ts';

/** Splits `total` (at its currency's scale) in proportion to non-negative `weights` (not all zero). */
export function allocate(total: Money, weights: readonly (string | Decimal)[]): Money[] {
  if (!total.isRounded())
    throw new RangeError(`the total ${total.toString()} has more decimals than ${total.currency}`);
  if (weights.length === 0) throw new RangeError('no lines to allocate to');
  const w = weights.map((x) => (typeof x === 'string' ? parseDecimal(x) : x));
  if (w.some((x) => x.isNegative() && !x.isZero())) throw new RangeError('weights must not be negative');
  const sum = w.reduce((a, b) => a.plus(b), new Decimal(0));
  if (sum.isZero()) throw new RangeError('weights must not all be zero');

  // Work in whole minor units of the absolute total; put the sign back at the end.
  const scale = new Decimal(10).pow(minorUnits(total.currency));
  const units = total.amount.abs().times(scale);
  const exact = w.map((x) => units.times(x).dividedBy(sum));
  const floors = exact.map((e) => e.floor());
  let left = units.minus(floors.reduce((a, b) => a.plus(b), new Decimal(0))).toNumber();
  const order = exact
    .map((e, i) => ({ i, remainder: e.minus(floors[i] ?? 0) }))
    .sort((a, b) => b.remainder.comparedTo(a.remainder) || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    floors[i] = (floors[i] ?? new Decimal(0)).plus(1);
    left--;
  }
  const sign = total.isNegative() ? -1 : 1;
  return floors.map((f) => Money.of(f.dividedBy(scale).times(sign), total.currency));
}

/** Splits `total` into `n` parts that differ by at most one minor unit, larger parts first. */
export function allocateEvenly(total: Money, n: number): Money[] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError('n must be a positive whole number');
  return allocate(
    total,
    Array.from({ length: n }, () => '1'),
  );
}
