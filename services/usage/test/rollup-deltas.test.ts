// Unit tests of a batch's rollup deltas: whole numbers are added as plain numbers while their sum stays exact,
// and the result must be what decimals give for the same values, whatever their size or mix.
import { Decimal } from '@billing/money';
import { MeterAggregation, MeterSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { create, type JsonValue } from '@bufbuild/protobuf';
import { expect, test } from '@jest/globals';
import fc from 'fast-check';
import { amountText } from '../src/domain/meter.ts';
import { readEvents, rollupDeltas } from '../src/domain/rollup.ts';
import type { MeteredEvent } from '../src/domain/usage-event.ts';

const at = new Date('2026-03-10T11:00:30Z');
const meter = (aggregation: MeterAggregation) =>
  create(MeterSchema, { key: 'm', eventType: 'e', aggregation, valueProperty: 'v' });

/** The value one bucket of `values` (all in one minute) gets from the meter. */
function bucketValue(aggregation: MeterAggregation, values: readonly JsonValue[]): string {
  const events: MeteredEvent[] = values.map((v, index) => ({
    index,
    id: `e${index}`,
    customer: 'acme',
    type: 'e',
    time: new Date(at.getTime() + index),
    properties: { v },
  }));
  const { readings, unreadable } = readEvents(events, [meter(aggregation)]);
  expect(unreadable.size).toBe(0);
  const deltas = rollupDeltas(readings);
  expect(deltas).toHaveLength(1);
  return deltas[0] ? amountText(deltas[0].value) : '';
}

// Whole numbers near the edges of the exact range, small ones, fractions, and numbers sent as text.
const value = fc.oneof(
  fc.maxSafeInteger(),
  fc.integer({ min: Number.MAX_SAFE_INTEGER - 1_000, max: Number.MAX_SAFE_INTEGER }),
  fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: -Number.MAX_SAFE_INTEGER + 1_000 }),
  fc.integer({ min: -1_000, max: 1_000 }),
  // Doubles of at most 20 decimals (finer ones are read rounded, see meter-reading.test.ts).
  fc
    .double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 })
    .filter((d) => new Decimal(d).decimalPlaces() <= 20),
  fc.integer({ min: 0, max: 99_999 }).map((n) => `${n / 100}`),
);
const exact = (v: JsonValue) => new Decimal(String(v));

test('sums and maxima equal the decimal ones, also past 2^53 and with fractions', () => {
  fc.assert(
    fc.property(fc.array(value, { minLength: 1, maxLength: 30 }), (values) => {
      const sum = values.reduce<Decimal>((total, v) => total.plus(exact(v)), new Decimal(0));
      expect(bucketValue(MeterAggregation.SUM, values)).toBe(sum.toFixed());
      expect(bucketValue(MeterAggregation.MAX, values)).toBe(Decimal.max(...values.map(exact)).toFixed());
    }),
  );
});

test('a sum past 2^53 is exact to the unit', () => {
  const max = Number.MAX_SAFE_INTEGER;
  expect(bucketValue(MeterAggregation.SUM, [max, max, 3])).toBe('18014398509481985');
  expect(bucketValue(MeterAggregation.SUM, [max, 1, -1])).toBe('9007199254740991');
  expect(bucketValue(MeterAggregation.SUM, [2.5, 1, 0.25])).toBe('3.75');
  expect(bucketValue(MeterAggregation.COUNT, [max, max, max])).toBe('3');
  expect(bucketValue(MeterAggregation.SUM, [-0])).toBe('0');
});
