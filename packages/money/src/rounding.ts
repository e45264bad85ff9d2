// Named rounding modes. Callers always say which one applies: there is no silent default.
import type { Decimal as DecimalJs } from 'decimal.js';
import { Decimal } from './decimal.ts';

/** How to round to a number of decimals. */
export type RoundingMode = 'half_even' | 'half_up' | 'half_down' | 'up' | 'down' | 'ceiling' | 'floor';

/** The mode the platform uses unless a rule says otherwise: banker's rounding, unbiased over many lines. */
export const DEFAULT_ROUNDING: RoundingMode = 'half_even';

const MODES: Record<RoundingMode, DecimalJs.Rounding> = {
  half_even: Decimal.ROUND_HALF_EVEN,
  half_up: Decimal.ROUND_HALF_UP,
  half_down: Decimal.ROUND_HALF_DOWN,
  up: Decimal.ROUND_UP,
  down: Decimal.ROUND_DOWN,
  ceiling: Decimal.ROUND_CEIL,
  floor: Decimal.ROUND_FLOOR,
};

/** `value` rounded to `decimals` places with `mode` ('half_up' and 'up' round away from zero). */
export function roundDecimal(value: Decimal, decimals: number, mode: RoundingMode): Decimal {
  return value.toDecimalPlaces(decimals, MODES[mode]);
}
