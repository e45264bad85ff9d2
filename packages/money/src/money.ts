// An amount of money: a currency and an exact decimal. Immutable; arithmetic across currencies is refused.

import { minorUnits } from './currency.ts';
import { Decimal, formatDecimal, InvalidDecimalError, parseDecimal } from './decimal.ts';
import { MoneyError } from './error.ts';
import { type RoundingMode, roundDecimal } from './rounding.ts';

/** Arithmetic between two currencies. */
export class CurrencyMismatchError extends MoneyError {
  /** Stable code for callers mapping errors. */
  readonly code = 'CURRENCY_MISMATCH';

  constructor(a: string, b: string) {
    super(`cannot combine ${a} and ${b}`);
    this.name = 'CurrencyMismatchError';
  }
}

/** An amount with more decimals than its currency, where a whole number of minor units is needed. */
export class UnroundedAmountError extends MoneyError {
  /** Stable code for callers mapping errors. */
  readonly code = 'UNROUNDED_AMOUNT';

  constructor(amount: string, currency: string) {
    super(`${amount} ${currency} is not a whole number of minor units; round it first`);
    this.name = 'UnroundedAmountError';
  }
}

/** An exact amount in one currency. Keeps full precision until `round` is called. */
export class Money {
  /** ISO 4217 code. */
  readonly currency: string;
  /** The exact amount. */
  readonly amount: Decimal;

  private constructor(currency: string, amount: Decimal) {
    this.currency = currency;
    this.amount = amount;
  }

  /** Money from a decimal string of the API (or a Decimal); checks the currency code. */
  static of(amount: string | Decimal, currency: string): Money {
    minorUnits(currency);
    const value = typeof amount === 'string' ? parseDecimal(amount) : amount;
    if (!value.isFinite()) throw new InvalidDecimalError(value.toString(), 'not a finite number');
    return new Money(currency, value);
  }

  /** Money from a whole number of minor units (cents for USD, yen for JPY), as payment providers count. */
  static fromMinorUnits(units: bigint | number, currency: string): Money {
    if (typeof units === 'number' && !Number.isSafeInteger(units)) {
      throw new RangeError(`${units} is not a whole number of minor units`);
    }
    return Money.of(new Decimal(units.toString()).dividedBy(new Decimal(10).pow(minorUnits(currency))), currency);
  }

  /** The amount as a whole number of minor units; throws UnroundedAmountError if it has more decimals. */
  toMinorUnits(): bigint {
    if (!this.isRounded()) throw new UnroundedAmountError(formatDecimal(this.amount), this.currency);
    return BigInt(this.amount.times(new Decimal(10).pow(this.minorUnits)).toFixed(0));
  }

  /** Zero in `currency`. */
  static zero(currency: string): Money {
    return Money.of(new Decimal(0), currency);
  }

  /** Decimals of this currency. */
  get minorUnits(): number {
    return minorUnits(this.currency);
  }

  #same(other: Money): void {
    if (other.currency !== this.currency) throw new CurrencyMismatchError(this.currency, other.currency);
  }

  /** This plus `other` (same currency). */
  add(other: Money): Money {
    this.#same(other);
    return new Money(this.currency, this.amount.plus(other.amount));
  }

  /** This minus `other` (same currency). */
  subtract(other: Money): Money {
    this.#same(other);
    return new Money(this.currency, this.amount.minus(other.amount));
  }

  /** This times a quantity or rate (exact). */
  multiply(factor: string | Decimal): Money {
    return new Money(this.currency, this.amount.times(typeof factor === 'string' ? parseDecimal(factor) : factor));
  }

  /** This divided by a non-zero divisor, exact to 60 significant digits (round afterwards). */
  divide(divisor: string | Decimal): Money {
    const d = typeof divisor === 'string' ? parseDecimal(divisor) : divisor;
    if (d.isZero()) throw new RangeError('division by zero');
    return new Money(this.currency, this.amount.dividedBy(d));
  }

  /** The opposite amount. */
  negate(): Money {
    return new Money(this.currency, this.amount.negated());
  }

  /** Rounded to the currency's minor units with `mode`. */
  round(mode: RoundingMode): Money {
    return new Money(this.currency, roundDecimal(this.amount, this.minorUnits, mode));
  }

  /** Whether it has no more decimals than its currency. */
  isRounded(): boolean {
    return this.amount.decimalPlaces() <= this.minorUnits;
  }

  /** -1, 0 or 1 as this is less than, equal to or greater than `other` (same currency). */
  compare(other: Money): -1 | 0 | 1 {
    this.#same(other);
    return this.amount.comparedTo(other.amount) as -1 | 0 | 1;
  }

  /** Whether the amounts and currencies are equal (2.5 equals 2.50). */
  equals(other: Money): boolean {
    return other.currency === this.currency && this.amount.equals(other.amount);
  }

  /** Whether it is zero. */
  isZero(): boolean {
    return this.amount.isZero();
  }

  /** Whether it is below zero. */
  isNegative(): boolean {
    return this.amount.isNegative() && !this.amount.isZero();
  }

  /**
   * The amount as an API decimal string: at the currency's scale when rounded ("45.00", "1500" for JPY),
   * with all its digits otherwise ("0.005").
   */
  toString(): string {
    return this.isRounded() ? formatDecimal(this.amount, this.minorUnits) : formatDecimal(this.amount);
  }
}
