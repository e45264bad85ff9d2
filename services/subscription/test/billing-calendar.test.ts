// The billing calendar against the cases mature systems got wrong, and its tiling property.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { type BillingSchedule, periodAt, periodContaining } from '../src/domain/billing-calendar.ts';

const starts = (schedule: BillingSchedule, count: number) =>
  Array.from({ length: count }, (_, n) => periodAt(schedule, n).start.toISOString());

describe('anniversaries at the end of the month', () => {
  test('Jan 31 comes back to the 31st after February (2027 is not a leap year)', () => {
    const s: BillingSchedule = {
      start: new Date('2027-01-31T10:00:00Z'),
      zone: 'UTC',
      interval: 'month',
      anchor: { kind: 'anniversary' },
    };
    expect(starts(s, 5)).toEqual([
      '2027-01-31T10:00:00.000Z',
      '2027-02-28T10:00:00.000Z',
      '2027-03-31T10:00:00.000Z',
      '2027-04-30T10:00:00.000Z',
      '2027-05-31T10:00:00.000Z',
    ]);
  });

  test('the 29th and the 30th in February of a leap year and of a common year', () => {
    const on = (iso: string) =>
      starts({ start: new Date(iso), zone: 'UTC', interval: 'month', anchor: { kind: 'anniversary' } }, 3);
    expect(on('2028-01-30T00:00:00Z')).toEqual([
      '2028-01-30T00:00:00.000Z',
      '2028-02-29T00:00:00.000Z',
      '2028-03-30T00:00:00.000Z',
    ]);
    expect(on('2027-01-29T00:00:00Z')).toEqual([
      '2027-01-29T00:00:00.000Z',
      '2027-02-28T00:00:00.000Z',
      '2027-03-29T00:00:00.000Z',
    ]);
  });

  test('a Feb 29 yearly anniversary is Feb 28 in common years and Feb 29 again in leap years', () => {
    const s: BillingSchedule = {
      start: new Date('2028-02-29T12:00:00Z'),
      zone: 'UTC',
      interval: 'year',
      anchor: { kind: 'anniversary' },
    };
    expect(starts(s, 5)).toEqual([
      '2028-02-29T12:00:00.000Z',
      '2029-02-28T12:00:00.000Z',
      '2030-02-28T12:00:00.000Z',
      '2031-02-28T12:00:00.000Z',
      '2032-02-29T12:00:00.000Z',
    ]);
  });

  test('quarterly from Nov 30: Feb 28, May 30, Aug 30', () => {
    const s: BillingSchedule = {
      start: new Date('2026-11-30T00:00:00Z'),
      zone: 'UTC',
      interval: 'quarter',
      anchor: { kind: 'anniversary' },
    };
    expect(starts(s, 4)).toEqual([
      '2026-11-30T00:00:00.000Z',
      '2027-02-28T00:00:00.000Z',
      '2027-05-30T00:00:00.000Z',
      '2027-08-30T00:00:00.000Z',
    ]);
  });
});

describe('time zones', () => {
  test('a Berlin customer billed on the 15th at 10:00 local keeps 10:00 across the spring DST change', () => {
    const s: BillingSchedule = {
      start: new Date('2026-03-15T09:00:00Z'),
      zone: 'Europe/Berlin',
      interval: 'month',
      anchor: { kind: 'anniversary' },
    };
    const march = periodAt(s, 0);
    expect(march.end.toISOString()).toBe('2026-04-15T08:00:00.000Z');
    // 31 days less the hour the clocks skipped.
    expect((march.end.getTime() - march.start.getTime()) / 3_600_000).toBe(31 * 24 - 1);
  });

  test('an anniversary at 02:30 in New York falls in the March DST gap and moves to its end, then returns', () => {
    const s: BillingSchedule = {
      start: new Date('2026-02-08T07:30:00Z'),
      zone: 'America/New_York',
      interval: 'month',
      anchor: { kind: 'anniversary' },
    };
    expect(starts(s, 3)).toEqual(['2026-02-08T07:30:00.000Z', '2026-03-08T07:00:00.000Z', '2026-04-08T06:30:00.000Z']);
  });

  test('a calendar anchor on the 1st starts periods at local midnight, with a stub first period', () => {
    const s: BillingSchedule = {
      start: new Date('2026-01-15T15:00:00Z'),
      zone: 'America/New_York',
      interval: 'month',
      anchor: { kind: 'day_of_month', day: 1 },
    };
    expect(starts(s, 4)).toEqual([
      '2026-01-15T15:00:00.000Z',
      '2026-02-01T05:00:00.000Z',
      '2026-03-01T05:00:00.000Z',
      '2026-04-01T04:00:00.000Z',
    ]);
  });

  test('a quarterly day-of-month calendar that starts on its anchor midnight has full quarters from the start', () => {
    const s: BillingSchedule = {
      start: new Date('2026-03-15T00:00:00Z'),
      zone: 'UTC',
      interval: 'quarter',
      anchor: { kind: 'day_of_month', day: 15 },
    };
    expect(starts(s, 3)).toEqual(['2026-03-15T00:00:00.000Z', '2026-06-15T00:00:00.000Z', '2026-09-15T00:00:00.000Z']);
    // Off the anchor, a stub reaches the next anchor midnight first.
    expect(starts({ ...s, start: new Date('2026-03-20T00:00:00Z') }, 3)).toEqual([
      '2026-03-20T00:00:00.000Z',
      '2026-04-15T00:00:00.000Z',
      '2026-07-15T00:00:00.000Z',
    ]);
  });

  test('a day-of-month anchor on the 31st clamps to each month', () => {
    const s: BillingSchedule = {
      start: new Date('2027-01-10T00:00:00Z'),
      zone: 'UTC',
      interval: 'month',
      anchor: { kind: 'day_of_month', day: 31 },
    };
    expect(starts(s, 4)).toEqual([
      '2027-01-10T00:00:00.000Z',
      '2027-01-31T00:00:00.000Z',
      '2027-02-28T00:00:00.000Z',
      '2027-03-31T00:00:00.000Z',
    ]);
  });
});

describe('properties', () => {
  const schedules = fc.record({
    start: fc
      .integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2032, 0, 1) })
      .map((t) => new Date(Math.floor(t / 1000) * 1000)),
    zone: fc.constantFrom(
      'UTC',
      'Europe/Berlin',
      'America/New_York',
      'Asia/Kolkata',
      'Australia/Lord_Howe',
      'America/Santiago',
      'Pacific/Chatham',
    ),
    interval: fc.constantFrom('month' as const, 'quarter' as const, 'year' as const),
    anchor: fc.oneof(
      fc.constant({ kind: 'anniversary' as const }),
      fc.integer({ min: 1, max: 31 }).map((day) => ({ kind: 'day_of_month' as const, day })),
    ),
  });

  test('periods tile time: each ends where the next starts, none is empty, and each contains what it says', () => {
    fc.assert(
      fc.property(
        schedules,
        fc.integer({ min: 0, max: 40 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (schedule, n, within) => {
          const period = periodAt(schedule, n);
          const next = periodAt(schedule, n + 1);
          expect(period.end.getTime()).toBe(next.start.getTime());
          expect(period.start.getTime()).toBeLessThan(period.end.getTime());
          const t = new Date(
            period.start.getTime() + Math.floor(within * (period.end.getTime() - period.start.getTime() - 1)),
          );
          expect(periodContaining(schedule, t)).toEqual(period);
        },
      ),
    );
  });
});
