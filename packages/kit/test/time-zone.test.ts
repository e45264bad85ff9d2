import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { addLocalDays, fromLocal, isTimeZone, startOfLocalDay, startOfLocalMonth, toLocal } from '../src/time-zone.ts';

describe('time zones', () => {
  test('local midnights around the DST changes of Berlin are 23 and 25 hours apart', () => {
    const spring = startOfLocalDay(new Date('2026-03-29T12:00:00Z'), 'Europe/Berlin');
    expect(spring.toISOString()).toBe('2026-03-28T23:00:00.000Z');
    expect(startOfLocalDay(spring, 'Europe/Berlin', 1).toISOString()).toBe('2026-03-29T22:00:00.000Z');
    const autumn = startOfLocalDay(new Date('2026-10-25T12:00:00Z'), 'Europe/Berlin');
    expect(autumn.toISOString()).toBe('2026-10-24T22:00:00.000Z');
    expect(startOfLocalDay(autumn, 'Europe/Berlin', 1).toISOString()).toBe('2026-10-25T23:00:00.000Z');
  });

  test('month starts in New York and Kolkata (half-hour offset)', () => {
    expect(startOfLocalMonth(new Date('2026-03-15T00:00:00Z'), 'America/New_York').toISOString()).toBe(
      '2026-03-01T05:00:00.000Z',
    );
    expect(startOfLocalMonth(new Date('2026-03-15T00:00:00Z'), 'America/New_York', 1).toISOString()).toBe(
      '2026-04-01T04:00:00.000Z',
    );
    expect(startOfLocalMonth(new Date('2026-01-31T20:00:00Z'), 'Asia/Kolkata').toISOString()).toBe(
      '2026-01-31T18:30:00.000Z',
    );
  });

  test('a wall time skipped by DST resolves to the end of the gap', () => {
    expect(
      fromLocal({ year: 2026, month: 3, day: 8, hour: 2, minute: 30, second: 0 }, 'America/New_York').toISOString(),
    ).toBe('2026-03-08T07:00:00.000Z');
  });

  test('an ambiguous wall time (the autumn hour that repeats) takes its first occurrence', () => {
    expect(
      fromLocal({ year: 2026, month: 11, day: 1, hour: 1, minute: 30, second: 0 }, 'America/New_York').toISOString(),
    ).toBe('2026-11-01T05:30:00.000Z');
  });

  test('unknown zones are refused', () => {
    expect(isTimeZone('Europe/Berlin')).toBe(true);
    expect(isTimeZone('Mars/Olympus')).toBe(false);
    expect(isTimeZone('')).toBe(false);
  });

  test('property: local days tile time, each day starting at local midnight', () => {
    const zones = fc.constantFrom(
      'UTC',
      'Europe/Berlin',
      'America/New_York',
      'Asia/Kolkata',
      'Australia/Lord_Howe',
      'America/Santiago',
    );
    fc.assert(
      fc.property(zones, fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) }), (zone, t) => {
        const instant = new Date(t);
        const start = startOfLocalDay(instant, zone);
        const next = startOfLocalDay(instant, zone, 1);
        expect(start.getTime()).toBeLessThanOrEqual(t);
        expect(next.getTime()).toBeGreaterThan(t);
        expect(startOfLocalDay(next, zone).getTime()).toBe(next.getTime());
        const local = toLocal(start, zone);
        // Midnight, unless midnight itself was skipped by a DST change (then the first instant after it).
        expect(local.hour === 0 && local.minute === 0 ? true : local.hour === 1).toBe(true);
      }),
    );
  });

  test('adding local days keeps the local time across a DST change and across months', () => {
    // 10:00 EST on Mar 1 2026; DST starts Mar 8: 14 local days later is 10:00 EDT on Mar 15.
    expect(addLocalDays(new Date('2026-03-01T15:00:00Z'), 'America/New_York', 14).toISOString()).toBe(
      '2026-03-15T14:00:00.000Z',
    );
    expect(addLocalDays(new Date('2026-01-25T00:00:00Z'), 'UTC', 14).toISOString()).toBe('2026-02-08T00:00:00.000Z');
  });
});
