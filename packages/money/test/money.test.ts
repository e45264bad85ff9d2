// Money checked to the cent against hand-worked numbers, and its laws checked on random values.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import {
  allocate,
  allocateEvenly,
  CurrencyMismatchError,
  Decimal,
  formatDecimal,
  InvalidCurrencyError,
  InvalidDecimalError,
  isCurrencyCode,
  Money,
  MoneyError,
  minorUnits,
  parseDecimal,
  type RoundingMode,
  UnroundedAmountError,
} from '../src/index.ts';

const usd = (amount: string) => Money.of(amount, 'USD');

describe('currencies', () => {
  test('minor units follow ISO 4217, zero- and three-decimal currencies included', () => {
    expect([
      minorUnits('USD'),
      minorUnits('EUR'),
      minorUnits('JPY'),
      minorUnits('KRW'),
      minorUnits('BHD'),
      minorUnits('CLF'),
    ]).toEqual([2, 2, 0, 0, 3, 4]);
    expect(isCurrencyCode('usd')).toBe(false);
    expect(minorUnits('UYU')).toBe(2);
    expect(isCurrencyCode('XYZ')).toBe(false);
    expect(() => minorUnits('toString')).toThrow(InvalidCurrencyError);
  });
});

describe('decimal strings', () => {
  test.each(['0', '45.00', '-0.6', '0.005', '123456789012345678.123456789012'])('accepts %s', (value) => {
    expect(formatDecimal(parseDecimal(value))).toBe(value.replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, ''));
  });

  test.each(['', '1e3', '+1', ' 1', '1.', '.5', '1,5', 'NaN', 'Infinity', '0.1234567890123', '--1'])(
    'refuses %j',
    (value) => {
      expect(() => parseDecimal(value)).toThrow(InvalidDecimalError);
    },
  );

  test('accepts leading zeros and prints without them', () => {
    expect(formatDecimal(parseDecimal('00.50'))).toBe('0.5');
    expect(formatDecimal(parseDecimal('007'))).toBe('7');
  });

  test('formatting to a scale never rounds silently', () => {
    expect(formatDecimal(new Decimal('2.3'), 2)).toBe('2.30');
    expect(() => formatDecimal(new Decimal('2.345'), 2)).toThrow(RangeError);
  });

  test('never prints an exponent', () => {
    expect(formatDecimal(new Decimal('1e-20'))).toBe('0.00000000000000000001');
    expect(formatDecimal(new Decimal('1e30'))).toBe('1000000000000000000000000000000');
  });
});

describe('arithmetic to the cent (docs/product.md, S1)', () => {
  test('3 seats x $15 = $45.00', () => {
    expect(usd('15').multiply('3').round('half_even').toString()).toBe('45.00');
  });

  test('120 overage minutes x $0.005 = $0.60', () => {
    expect(usd('0.005').multiply('120').round('half_even').toString()).toBe('0.60');
  });

  test('unrounded amounts keep every digit; JPY has no decimals', () => {
    expect(usd('0.005').multiply('3').toString()).toBe('0.015');
    expect(Money.of('1500', 'JPY').multiply('1.5').round('half_up').toString()).toBe('2250');
    expect(Money.of('100', 'JPY').divide('3').round('half_even').toString()).toBe('33');
  });

  test('products of long amounts stay exact', () => {
    const a = '123456789012345678901234567.123456789012';
    const product = Money.of(a, 'USD').multiply(a).amount;
    expect(product.equals(new Decimal(a).times(new Decimal(a)))).toBe(true);
    expect(formatDecimal(product)).toBe(
      '15241578753238836750495351373266271851918917442316720.864121934361153483936144',
    );
  });

  test('money is finite', () => {
    expect(() => Money.of(new Decimal(Number.NaN), 'USD')).toThrow(InvalidDecimalError);
  });

  test('currencies never mix', () => {
    expect(() => usd('1').add(Money.of('1', 'EUR'))).toThrow(CurrencyMismatchError);
  });
});

describe('rounding modes', () => {
  const table: [string, RoundingMode, string][] = [
    ['2.345', 'half_even', '2.34'],
    ['2.355', 'half_even', '2.36'],
    ['-2.345', 'half_even', '-2.34'],
    ['2.345', 'half_up', '2.35'],
    ['-2.345', 'half_up', '-2.35'],
    ['2.345', 'half_down', '2.34'],
    ['2.341', 'up', '2.35'],
    ['-2.341', 'up', '-2.35'],
    ['2.349', 'down', '2.34'],
    ['-2.349', 'down', '-2.34'],
    ['-2.341', 'ceiling', '-2.34'],
    ['2.341', 'ceiling', '2.35'],
    ['-2.341', 'floor', '-2.35'],
    ['2.349', 'floor', '2.34'],
  ];
  test.each(table)('%s rounded %s is %s', (amount, mode, expected) => {
    expect(usd(amount).round(mode).toString()).toBe(expected);
  });

  test('BHD rounds to three decimals', () => {
    expect(Money.of('1.2345', 'BHD').round('half_up').toString()).toBe('1.235');
  });
});

describe('allocation', () => {
  test('JPY 1000 in three equal parts is 334 + 333 + 333', () => {
    expect(allocateEvenly(Money.of('1000', 'JPY'), 3).map(String)).toEqual(['334', '333', '333']);
  });

  test('$100.00 by weights 1:1:1 is 33.34 + 33.33 + 33.33; negative totals mirror', () => {
    expect(allocate(usd('100.00'), ['1', '1', '1']).map(String)).toEqual(['33.34', '33.33', '33.33']);
    expect(allocate(usd('-100.00'), ['1', '1', '1']).map(String)).toEqual(['-33.34', '-33.33', '-33.33']);
  });

  test('the largest remainder gets the spare cent, ties to the earliest line', () => {
    // $0.05 by 0.3:0.3:0.4 is 1.5 + 1.5 + 2 cents: one cent is left, and the first tied line takes it.
    expect(allocate(usd('0.05'), ['0.3', '0.3', '0.4']).map(String)).toEqual(['0.02', '0.01', '0.02']);
    // $10.00 by 1:2 is 333.33... + 666.66... cents: the second line has the larger remainder.
    expect(allocate(usd('10.00'), ['1', '2']).map(String)).toEqual(['3.33', '6.67']);
  });

  const currency = fc.constantFrom('USD', 'JPY', 'BHD');
  const weights = fc
    .array(fc.integer({ min: 0, max: 1_000_000 }), { minLength: 1, maxLength: 12 })
    .filter((w) => w.some((x) => x > 0));

  test('property: an allocation sums exactly to its total, each part within one minor unit of its share', () => {
    fc.assert(
      fc.property(currency, fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }), weights, (code, units, w) => {
        const scale = new Decimal(10).pow(minorUnits(code));
        const total = Money.of(new Decimal(units.toString()).dividedBy(scale), code);
        const parts = allocate(total, w.map(String));
        const sum = parts.reduce((a, b) => a.add(b), Money.zero(code));
        expect(sum.equals(total)).toBe(true);
        const weightSum = w.reduce((a, b) => a + b, 0);
        parts.forEach((part, i) => {
          const share = total.amount.times(w[i] ?? 0).dividedBy(weightSum);
          expect(part.amount.minus(share).abs().lessThan(new Decimal(1).dividedBy(scale))).toBe(true);
          expect(part.isRounded()).toBe(true);
        });
      }),
    );
  });
});

describe('laws', () => {
  const amount = fc
    .tuple(fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n }), fc.integer({ min: 0, max: 12 }))
    .map(([digits, scale]) => formatDecimal(new Decimal(digits.toString()).dividedBy(new Decimal(10).pow(scale))));

  test('property: parse(format(x)) == x', () => {
    fc.assert(fc.property(amount, (a) => expect(formatDecimal(parseDecimal(a))).toBe(a)));
  });

  test('property: adding then subtracting returns the same amount exactly', () => {
    fc.assert(
      fc.property(amount, amount, (a, b) => expect(usd(a).add(usd(b)).subtract(usd(b)).equals(usd(a))).toBe(true)),
    );
  });

  test('property: rounding is idempotent, and half_even differs from half_up only on exact ties', () => {
    fc.assert(
      fc.property(amount, (a) => {
        const m = usd(a);
        const even = m.round('half_even');
        expect(even.round('half_even').equals(even)).toBe(true);
        const up = m.round('half_up');
        if (!even.equals(up)) {
          const third = m.amount.times(1000).abs().mod(10);
          expect(third.equals(5) && m.amount.times(1000).isInteger()).toBe(true);
        }
      }),
    );
  });
});

describe('minor units, as payment providers count', () => {
  test('amounts convert to and from whole minor units per currency', () => {
    expect(usd('45.00').toMinorUnits()).toBe(4500n);
    expect(usd('-0.6').toMinorUnits()).toBe(-60n);
    expect(Money.of('1500', 'JPY').toMinorUnits()).toBe(1500n);
    expect(Money.of('1.234', 'BHD').toMinorUnits()).toBe(1234n);
    expect(Money.fromMinorUnits(4500n, 'USD').toString()).toBe('45.00');
    expect(Money.fromMinorUnits(-60, 'USD').toString()).toBe('-0.60');
    expect(Money.fromMinorUnits(1500, 'JPY').toString()).toBe('1500');
    expect(Money.fromMinorUnits(123456789012345678901234567890n, 'EUR').toString()).toBe(
      '1234567890123456789012345678.90',
    );
  });

  test('an unrounded amount or a fractional count is refused', () => {
    expect(() => usd('0.005').toMinorUnits()).toThrow(UnroundedAmountError);
    expect(() => Money.fromMinorUnits(1.5, 'USD')).toThrow(RangeError);
  });

  test('every error of the package is a MoneyError with a stable code', () => {
    const codes = [
      () => parseDecimal('1e3'),
      () => Money.of('1', 'XXX1'),
      () => usd('1').add(Money.of('1', 'EUR')),
      () => usd('0.001').toMinorUnits(),
    ].map((f) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(MoneyError);
        return (err as MoneyError).code;
      }
      return 'none';
    });
    expect(codes).toEqual(['INVALID_DECIMAL', 'INVALID_CURRENCY', 'CURRENCY_MISMATCH', 'UNROUNDED_AMOUNT']);
    expect(new InvalidCurrencyError('X')).toBeInstanceOf(MoneyError);
    expect(new InvalidDecimalError('x', 'y')).toBeInstanceOf(MoneyError);
    expect(new CurrencyMismatchError('USD', 'EUR')).toBeInstanceOf(MoneyError);
  });

  test('property: a rounded amount survives the round trip through minor units', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }),
        fc.constantFrom('USD', 'JPY', 'BHD', 'EUR'),
        (units, currency) => {
          const money = Money.fromMinorUnits(units, currency);
          expect(money.isRounded()).toBe(true);
          expect(money.toMinorUnits()).toBe(units);
        },
      ),
    );
  });
});
