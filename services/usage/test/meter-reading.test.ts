// How a meter reads an event's properties: values out of range or not plainly numbers are refused, and a
// property's text (groups, filters, distinct values) is exactly what PostgreSQL's `->>` reads from the stored
// event, so rollups (built in the service) and raw-event reads (in SQL) agree.
import { type Database, openDatabase, queryBound } from '@billing/kit/db';
import { Decimal } from '@billing/money';
import { MeterAggregation, MeterSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { createTestDatabase, type TestDatabase, testLogger } from '@billing/test/harness';
import { create, type JsonValue } from '@bufbuild/protobuf';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { numericReading } from '../src/adapter/usage-event-repository.ts';
import { amountText, asText, readEvent } from '../src/domain/meter.ts';

const sum = create(MeterSchema, { key: 'm', eventType: 'e', aggregation: MeterAggregation.SUM, valueProperty: 'v' });
const reading = (v: JsonValue) => {
  const read = readEvent(sum, { v });
  return typeof read === 'string' ? read : amountText(read.value);
};

test('values below 1e30 are read to 20 decimals; larger or malformed ones are refused', () => {
  expect(
    [
      '5',
      ' 5 ',
      '1e-20',
      '12345e-2',
      1e29,
      -1.5,
      '999999999999999999999999999999',
      0.01 / 3600,
      '1.5e-20',
      '-1e-21',
    ].map(reading),
  ).toEqual([
    '5',
    '5',
    '0.00000000000000000001',
    '123.45',
    '100000000000000000000000000000',
    '-1.5',
    '999999999999999999999999999999',
    '0.00000277777777777778',
    '0.00000000000000000002',
    '0',
  ]);
  for (const refused of ['1e30', -1e30, 1e300, '1e-20000', '1e999999', '\t5', '5\n', '0x10', '']) {
    expect([refused, reading(refused)]).toEqual([refused, expect.stringMatching(/out of range|not a number/)]);
  }
});

let database: TestDatabase;
let db: Database;

beforeAll(async () => {
  database = await createTestDatabase('usage_meter_reading');
  db = await openDatabase({ service: 'usage', url: database.url, entities: [], migrations: [], logger: testLogger });
});

afterAll(async () => {
  await db.close();
  await database.drop();
});

test('PostgreSQL reads a number exactly as the service does (raw events at period edges)', async () => {
  const numbers = fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc
      .tuple(fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), fc.integer({ min: -40, max: 40 }), fc.nat(3))
      .map(([digits, exponent, spaces]) => `${' '.repeat(spaces)}${digits}e${exponent}${' '.repeat(spaces)}`),
    fc.constantFrom('\t5', ' 5 ', '1e-20000', '0.000000000000000000015', '-0.000000000000000000015', 'x'),
    // Longer than any numeric reads: refused by both.
    fc.constantFrom(`1.${'0'.repeat(17_000)}`, `0.${'0'.repeat(7_000)}1e-9999`, `${'1'.repeat(99)}e-90`),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(numbers, { minLength: 1, maxLength: 20 }), async (values) => {
      const documents = values.map((v) => JSON.stringify({ v }));
      const rows = await queryBound<{ n: string | null }>(
        db.fork(),
        `select (${numericReading("'v'")})::text as n
           from jsonb_array_elements_text($1::jsonb) with ordinality as t(doc, i), lateral (select doc::jsonb as properties) p
          order by i`,
        [JSON.stringify(documents)],
      );
      const service = values.map((v) => {
        const read = reading(v);
        return /not a number|out of range/.test(read) ? null : read;
      });
      expect(rows.map((r) => (r.n === null ? null : new Decimal(r.n).toFixed()))).toEqual(service);
    }),
    { numRuns: 50 },
  );
});

test("a property's text is what PostgreSQL's ->> reads from the stored event", async () => {
  const values = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(1e21, 1.5e-7, -2.5e25, 0.1, 1e-7, { b: 1, a: [1e21, 'é'], aa: null, é: '\u0001"\\' }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(values, { minLength: 1, maxLength: 20 }), async (sent) => {
      const documents = sent.map((k) => JSON.stringify({ k }));
      const rows = await queryBound<{ text: string | null }>(
        db.fork(),
        "select (doc::jsonb)->>'k' as text from jsonb_array_elements_text($1::jsonb) with ordinality as t(doc, n) order by n",
        [JSON.stringify(documents)],
      );
      expect(sent.map((k) => asText(JSON.parse(JSON.stringify(k)) as JsonValue) ?? null)).toEqual(
        rows.map((r) => r.text),
      );
    }),
    { numRuns: 50 },
  );
});
