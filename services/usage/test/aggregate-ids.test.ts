// Unit test of the usage service's aggregate ids: a customer's meter and a stored event never share one, and
// different customers, meters or events never share one either (each aggregate numbers its own sequence).
import { expect, test } from '@jest/globals';
import fc from 'fast-check';
import { meterUsageAggregate, usageEventAggregate } from '../src/domain/aggregates.ts';

const customer = fc.string({ unit: 'binary', minLength: 1, maxLength: 8 });
const meterKey = fc.stringMatching(/^[a-z][a-z0-9_]{0,5}$/);
// Printable ASCII, rich in the separators an id could be confused by.
const eventId = fc.string({
  unit: fc.constantFrom('a', '/', '%', '2', 'F', 'e', 'v', 'n', 't', 'm'),
  minLength: 1,
  maxLength: 8,
});

test('an event id equal to a meter key no longer shares its aggregate', () => {
  expect(meterUsageAggregate('acme', 'builds')).not.toBe(usageEventAggregate('acme', 'builds'));
});

test('aggregate ids are distinct for distinct aggregates', () => {
  fc.assert(
    fc.property(customer, meterKey, customer, eventId, (c1, key, c2, id) => {
      expect(meterUsageAggregate(c1, key)).not.toBe(usageEventAggregate(c2, id));
    }),
  );
  fc.assert(
    fc.property(customer, meterKey, customer, meterKey, (c1, k1, c2, k2) => {
      fc.pre(c1 !== c2 || k1 !== k2);
      expect(meterUsageAggregate(c1, k1)).not.toBe(meterUsageAggregate(c2, k2));
    }),
  );
  fc.assert(
    fc.property(customer, eventId, customer, eventId, (c1, i1, c2, i2) => {
      fc.pre(c1 !== c2 || i1 !== i2);
      expect(usageEventAggregate(c1, i1)).not.toBe(usageEventAggregate(c2, i2));
    }),
  );
});
