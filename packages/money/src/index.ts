// @billing/money: exact decimal money for the billing platform.
export { allocate, allocateEvenly } from './allocate.ts';
export { InvalidCurrencyError, isCurrencyCode, minorUnits } from './currency.ts';
export { Decimal, formatDecimal, InvalidDecimalError, MAX_FRACTION_DIGITS, parseDecimal } from './decimal.ts';
export { MoneyError } from './error.ts';
export { CurrencyMismatchError, Money, UnroundedAmountError } from './money.ts';
export { DEFAULT_ROUNDING, type RoundingMode, roundDecimal } from './rounding.ts';
