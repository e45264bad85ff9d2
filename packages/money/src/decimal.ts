// Exact decimals for money and quantities, on decimal.js (never floats), and the strict decimal string
// format of the protobuf API.

import decimalModule from 'decimal.js';
import { MoneyError } from './error.ts';

// decimal.js ships CommonJS-style types over an ES module whose default export is the class.
const DecimalJs = decimalModule as unknown as typeof import('decimal.js').Decimal;

/**
 * The decimal type: an isolated decimal.js constructor. 200 significant digits keep every sum and product of
 * accepted amounts (40 characters at most) exact; only division rounds.
 */
export const Decimal = DecimalJs.clone({
  precision: 200,
  rounding: DecimalJs.ROUND_HALF_EVEN,
  toExpNeg: -100,
  toExpPos: 100,
});
/** A decimal value. */
export type Decimal = InstanceType<typeof Decimal>;

/** Most fraction digits a decimal string may carry (unit prices below a cent). */
export const MAX_FRACTION_DIGITS = 12;
/** Longest decimal string accepted. */
export const MAX_DECIMAL_LENGTH = 40;

const DECIMAL_STRING = /^-?[0-9]+(\.[0-9]+)?$/;

/** A string that is not a decimal of the API's format. */
export class InvalidDecimalError extends MoneyError {
  /** Stable code for callers mapping errors. */
  readonly code = 'INVALID_DECIMAL';

  constructor(value: string, why: string) {
    super(`"${value.slice(0, MAX_DECIMAL_LENGTH)}" is not a decimal: ${why}`);
    this.name = 'InvalidDecimalError';
  }
}

/**
 * Parses a decimal string of the API: optional "-", digits, optional "." and 1-12 digits. No exponent, no
 * "+", no spaces.
 */
export function parseDecimal(value: string): Decimal {
  if (value.length === 0 || value.length > MAX_DECIMAL_LENGTH) {
    throw new InvalidDecimalError(value, `1 to ${MAX_DECIMAL_LENGTH} characters`);
  }
  if (!DECIMAL_STRING.test(value)) throw new InvalidDecimalError(value, 'expected digits with an optional "." part');
  const fraction = value.split('.')[1];
  if (fraction !== undefined && fraction.length > MAX_FRACTION_DIGITS) {
    throw new InvalidDecimalError(value, `at most ${MAX_FRACTION_DIGITS} decimals`);
  }
  return new Decimal(value);
}

/**
 * The canonical string of a decimal: plain notation, no exponent; with `scale`, padded to that many decimals.
 * It never rounds: a value with more decimals than `scale` is refused (round it first, naming the mode).
 */
export function formatDecimal(value: Decimal, scale?: number): string {
  if (!value.isFinite()) throw new InvalidDecimalError(value.toString(), 'not a finite number');
  if (scale !== undefined && value.decimalPlaces() > scale) {
    throw new RangeError(`${value.toFixed()} has more than ${scale} decimals: round it first`);
  }
  const text = scale === undefined ? value.toFixed() : value.toFixed(scale);
  // decimal.js writes negative zero as "-0"; money has no sign for zero.
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
}
