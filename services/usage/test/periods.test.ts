// Unit tests of a customer's billing calendar: the ranges a period owns are exactly the times whose events fall
// in it, whatever the overlaps between subscription periods and calendar months.
import { expect, test } from '@jest/globals';
import fc from 'fast-check';
import { BillingCalendar, type BillingPeriod, type KnownPeriod } from '../src/domain/periods.ts';

const DAY = 86_400_000;
const march = Date.UTC(2026, 2, 1);
const day = (n: number) => new Date(march + n * DAY);

test('a calendar month owns what no subscription period covers; an older subscription what a newer leaves', () => {
  const older: KnownPeriod = { customer: 'c', subscriptionId: 'sub-a', start: day(0), end: day(31), closed: false };
  const newer: KnownPeriod = { customer: 'c', subscriptionId: 'sub-b', start: day(9), end: day(20), closed: false };
  const calendar = new BillingCalendar([older, newer]);
  const month: BillingPeriod = { subscriptionId: '', start: day(0), end: day(31), closed: false };
  expect(calendar.ownedRanges('c', month)).toEqual([]);
  expect(calendar.ownedRanges('c', older)).toEqual([
    [day(0), day(9)],
    [day(20), day(31)],
  ]);
  expect(calendar.ownedRanges('c', newer)).toEqual([[day(9), day(20)]]);
  expect(new BillingCalendar([newer]).ownedRanges('c', month)).toEqual([
    [day(0), day(9)],
    [day(20), day(31)],
  ]);
});

test('an event time is in the ranges a period owns exactly when the calendar puts it in that period', () => {
  const period = fc
    .record({ start: fc.integer({ min: -5, max: 40 }), length: fc.integer({ min: 1, max: 35 }), id: fc.nat(3) })
    .map(
      ({ start, length, id }): KnownPeriod => ({
        customer: 'c',
        subscriptionId: `sub-${id}`,
        start: day(start),
        end: day(start + length),
        closed: false,
      }),
    );
  fc.assert(
    fc.property(fc.array(period, { maxLength: 5 }), fc.integer({ min: -5 * 24, max: 80 * 24 }), (periods, hour) => {
      const calendar = new BillingCalendar(periods);
      const time = new Date(march + hour * 3_600_000);
      const found = calendar.periodOf('c', time);
      const candidates: BillingPeriod[] = [...periods, found];
      for (const p of candidates) {
        const owns = calendar.ownedRanges('c', p).some(([from, to]) => from <= time && time < to);
        const isFound = p.subscriptionId === found.subscriptionId && p.start.getTime() === found.start.getTime();
        expect([p.subscriptionId, p.start, owns]).toEqual([p.subscriptionId, p.start, isFound]);
      }
    }),
  );
});

test('a period is owned as known now: one that ended early owns only up to its new end', () => {
  const ended: KnownPeriod = { customer: 'c', subscriptionId: 'sub-e', start: day(0), end: day(10), closed: true };
  const asAnnounced: BillingPeriod = { subscriptionId: 'sub-e', start: day(0), end: day(31), closed: false };
  expect(new BillingCalendar([ended]).ownedRanges('c', asAnnounced)).toEqual([[day(0), day(10)]]);
});
