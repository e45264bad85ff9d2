// Proration to the millisecond: worked examples checked by hand, and the partition property.
import { Decimal, formatDecimal, parseDecimal } from '@billing/money';
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { stubFullPeriod } from '../src/domain/billing-calendar.ts';
import { type ProratedLine, prorateChange, sliceAmount } from '../src/domain/proration.ts';

const jan15 = new Date('2026-01-15T00:00:00Z');
const feb15 = new Date('2026-02-15T00:00:00Z');
const feb1 = new Date('2026-02-01T00:00:00Z');
const full = { start: jan15, end: feb15 }; // 31 days

const seats = (quantity: string, unitAmount = '15.00'): ProratedLine => ({
  planKey: 'team',
  planVersion: 1,
  chargeKey: 'seats',
  addonKey: '',
  unitAmount,
  quantity,
});

describe('the proration rule', () => {
  test('the rest of a 31-day period from day 17 is 14/31 of the price, exact to 12 decimals', () => {
    // Accrued per unit at Feb 1: 15 x 17/31 = 8.2258064516129032... -> 8.225806451613 (12 decimals).
    // The rest per unit is 15 - 8.225806451613 = 6.774193548387; x3 = 20.322580645161. The start: x3 = 24.677419354839.
    expect(sliceAmount('15.00', '3', full, { start: feb1, end: feb15 })).toBe('20.322580645161');
    expect(sliceAmount('15.00', '3', full, { start: jan15, end: feb1 })).toBe('24.677419354839');
  });

  test('the two halves of a period add up to the full price exactly', () => {
    const a = parseDecimal(sliceAmount('15.00', '3', full, { start: jan15, end: feb1 }));
    const b = parseDecimal(sliceAmount('15.00', '3', full, { start: feb1, end: feb15 }));
    expect(formatDecimal(a.plus(b))).toBe('45');
  });

  test('an upgrade credits every old line and charges every new one for the rest of the period', () => {
    const items = prorateChange([seats('3')], [{ ...seats('3', '25.00'), planKey: 'business' }], full, feb1, 'replace');
    expect(items.map((i) => [i.line.planKey, i.sign, i.amount])).toEqual([
      ['team', -1, '-20.322580645161'],
      // 25 x 17/31 = 13.709677419354838709... -> 13.709677419355; 25 - that = 11.290322580645, x3
      ['business', 1, '33.870967741935'],
    ]);
  });

  test('a seat change charges or credits only the seats added or removed', () => {
    const added = prorateChange([seats('3')], [seats('5')], full, feb1, 'difference');
    expect(added.map((i) => [i.line.quantity, i.sign, i.amount])).toEqual([['2', 1, '13.548387096774']]);
    const removed = prorateChange([seats('5')], [seats('3')], full, feb1, 'difference');
    expect(removed.map((i) => [i.line.quantity, i.sign, i.amount])).toEqual([['2', -1, '-13.548387096774']]);
    expect(prorateChange([seats('3')], [seats('3')], full, feb1, 'difference')).toEqual([]);
  });

  test('a change at the very end of a period prorates nothing', () => {
    expect(prorateChange([seats('3')], [seats('5')], full, feb15, 'difference')).toEqual([]);
  });

  test('a day-of-month stub is prorated against the calendar period it ends', () => {
    const schedule = {
      start: new Date('2026-01-20T00:00:00Z'),
      zone: 'UTC',
      interval: 'month' as const,
      anchor: { kind: 'day_of_month' as const, day: 1 },
    };
    expect(stubFullPeriod(schedule)).toEqual({
      start: new Date('2026-01-01T00:00:00Z'),
      end: new Date('2026-02-01T00:00:00Z'),
    });
    expect(stubFullPeriod({ ...schedule, start: new Date('2026-01-01T00:00:00Z') })).toBeUndefined();
    expect(stubFullPeriod({ ...schedule, anchor: { kind: 'anniversary' } })).toBeUndefined();
  });
});

describe('the partition property', () => {
  test('for any price, quantity and cuts, the slices of a period sum to the full-period price exactly', () => {
    const amount = fc
      .tuple(fc.bigInt({ min: 0n, max: 10n ** 15n }), fc.integer({ min: 0, max: 12 }))
      .map(([units, scale]) => formatDecimal(new Decimal(units.toString()).dividedBy(new Decimal(10).pow(scale))));
    fc.assert(
      fc.property(
        amount,
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 366 * 24 * 3600 * 1000 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }),
        (unit, quantity, length, cuts) => {
          const start = new Date('2027-03-01T00:00:00Z');
          const end = new Date(start.getTime() + length);
          const times = [...new Set([0, ...cuts.map((c) => Math.floor(c * length)), length].sort((a, b) => a - b))].map(
            (ms) => new Date(start.getTime() + ms),
          );
          let sum = new Decimal(0);
          for (let i = 0; i + 1 < times.length; i++) {
            const slice = { start: times[i] as Date, end: times[i + 1] as Date };
            sum = sum.plus(parseDecimal(sliceAmount(unit, String(quantity), { start, end }, slice)));
          }
          expect(formatDecimal(sum)).toBe(formatDecimal(parseDecimal(unit).times(quantity)));
        },
      ),
      { numRuns: 500 },
    );
  });
});
