// Unit tests of event validation's own serializers: times written as Date.prototype.toISOString writes them, and
// canonical properties JSON (the fingerprint's input) alike for the same content in any key order.
import { UsageEventSchema } from '@billing/proto/billing/usage/v1/resources_pb';
import { create, type JsonObject } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { expect, test } from '@jest/globals';
import fc from 'fast-check';
import { isoTime, isRejection, type ValidEvent, validateEvent } from '../src/domain/usage-event.ts';
import { fromProtoUsageEvent } from '../src/rpc/convert.ts';

test('isoTime writes what toISOString writes, from year 1000 to 9999', () => {
  const edges = [
    '1970-01-01T00:00:00.000Z',
    '1969-12-31T23:59:59.999Z',
    '2024-02-29T12:34:56.789Z',
    '9999-12-31T23:59:59.999Z',
  ];
  for (const edge of edges) expect(isoTime(new Date(edge))).toBe(edge);
  fc.assert(
    fc.property(fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(9999, 11, 31, 23, 59, 59, 999) }), (ms) => {
      expect(isoTime(new Date(ms))).toBe(new Date(ms).toISOString());
    }),
  );
});

const now = new Date('2026-03-10T12:00:00Z');

function validated(properties: JsonObject): ValidEvent {
  const event = create(UsageEventSchema, {
    id: 'e-1',
    customerExternalId: 'acme',
    type: 'build.finished',
    eventTime: timestampFromDate(new Date('2026-03-10T11:00:00.250Z')),
    properties,
  });
  const result = validateEvent(fromProtoUsageEvent(event), 0, now);
  if (isRejection(result)) throw new Error(result.message);
  return result;
}

test('properties serialize with their keys sorted at every level, so key order never changes the fingerprint', () => {
  const sorted = validated({ a: 1, b: { c: [{ d: true, e: null }], f: 'x' }, g: 2.5 });
  const shuffled = validated({ g: 2.5, b: { f: 'x', c: [{ e: null, d: true }] }, a: 1 });
  expect(sorted.propertiesJson).toBe('{"a":1,"b":{"c":[{"d":true,"e":null}],"f":"x"},"g":2.5}');
  expect(shuffled.propertiesJson).toBe(sorted.propertiesJson);
  expect(shuffled.fingerprint).toBe(sorted.fingerprint);
  expect(validated({ os: 'linux', minutes: 3 }).propertiesJson).toBe('{"minutes":3,"os":"linux"}');
  expect(validated({ minutes: 4, os: 'linux' }).fingerprint).not.toBe(
    validated({ minutes: 3, os: 'linux' }).fingerprint,
  );
  expect(sorted.timeIso).toBe('2026-03-10T11:00:00.250Z');
});
