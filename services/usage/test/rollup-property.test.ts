// Property: for random event streams (duplicates, any order, any batching), the period value answered from
// the rollups equals the aggregation recomputed from the events themselves, for every aggregation, before and
// after the rollup log is folded.

import { catalogService } from '@billing/catalog';
import { queryBound } from '@billing/kit/db';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { Decimal } from '@billing/money';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { startTestService, type TestService, waitFor } from '@billing/test/harness';
import type { JsonValue } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type Client, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { compactRollups } from '../src/adapter/rollup-log-repository.ts';
import { usageService } from '../src/definition.ts';

const bus = createMemoryBus();
let catalog: TestService;
let usage: TestService;
let client: Client<typeof UsageService>;
const HOUR = 3_600_000;
const base = Math.floor((Date.now() - 5 * 24 * HOUR) / HOUR) * HOUR;
const METERS = [
  { key: 'p_sum', aggregation: MeterAggregation.SUM, valueProperty: 'v' },
  { key: 'p_count', aggregation: MeterAggregation.COUNT, valueProperty: '' },
  { key: 'p_max', aggregation: MeterAggregation.MAX, valueProperty: 'v' },
  { key: 'p_latest', aggregation: MeterAggregation.LATEST, valueProperty: 'v' },
  { key: 'p_unique', aggregation: MeterAggregation.UNIQUE_COUNT, valueProperty: 'u' },
];

beforeAll(async () => {
  catalog = await startTestService(catalogService, { bus });
  usage = await startTestService(usageService, { bus });
  client = createClient(UsageService, createGrpcTransport({ baseUrl: usage.baseUrl }));
  const catalogClient = createClient(CatalogService, createGrpcTransport({ baseUrl: catalog.baseUrl }));
  for (const m of METERS) {
    await catalogClient.createMeter({ requestId: m.key, meter: { ...m, name: m.key, eventType: 'prop.event' } });
  }
  // The meters reach usage through the catalog's events.
  const period = { startTime: timestampFromDate(new Date(base)), endTime: timestampFromDate(new Date(base + HOUR)) };
  await waitFor(
    () => client.getPeriodUsage({ customerExternalId: 'x', meterKey: 'p_unique', period }).then(Boolean, () => false),
    Boolean,
  );
});

afterAll(async () => {
  await usage.destroy();
  await catalog.destroy();
  await bus.close();
});

interface Generated {
  id: string;
  time: number;
  v: string;
  u: JsonValue;
}

function expected(events: Generated[], from: number, to: number): Record<string, string> {
  const inside = events.filter((e) => e.time >= from && e.time < to);
  const values = inside.map((e) => new Decimal(e.v));
  const latest = [...inside].sort((a, b) => a.time - b.time || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).at(-1);
  return {
    p_sum: values.reduce((a, b) => a.plus(b), new Decimal(0)).toFixed(),
    p_count: String(inside.length),
    p_max: inside.length ? Decimal.max(...values).toFixed() : '0',
    p_latest: latest ? new Decimal(latest.v).toFixed() : '0',
    p_unique: String(new Set(inside.map((e) => JSON.stringify(e.u))).size),
  };
}

let run = 0;

test('rollup answers equal the aggregation of the raw events', async () => {
  const generated = fc.uniqueArray(
    fc.record({
      id: fc.stringMatching(/^[a-z0-9]{1,6}$/),
      time: fc.integer({ min: base, max: base + 48 * HOUR }),
      v: fc.tuple(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 2 })).map(([n, s]) => `${n}e-${s}`),
      // Distinct values of every JSON kind: the rollups (read in the service) and the edges (read in SQL) must
      // see the same text.
      u: fc.constantFrom<JsonValue>('ana', 'bo', 1e21, 1.5e-7, true, { b: [1e21, 'x'], a: null }, ['cy', 2]),
    }),
    { minLength: 1, maxLength: 60, selector: (e) => e.id },
  );
  await fc.assert(
    fc.asyncProperty(
      generated,
      fc.array(fc.nat(), { maxLength: 20 }),
      fc.integer({ min: 1, max: 25 }),
      fc.integer({ min: base - HOUR, max: base + 49 * HOUR }),
      fc.integer({ min: 1, max: 50 * HOUR }),
      async (events, duplicateIndexes, batchSize, from, length) => {
        const customer = `prop-${run++}`;
        // Duplicates (same content) appended, then everything shuffled by a key derived from the inputs.
        const sent = [...events, ...duplicateIndexes.map((i) => events[i % events.length] as Generated)];
        sent.sort((a, b) => ((a.time * 7919 + a.id.length) % 1009) - ((b.time * 7919 + b.id.length) % 1009));
        for (let i = 0; i < sent.length; i += batchSize) {
          await client.ingestEvents({
            events: sent.slice(i, i + batchSize).map((e) => ({
              id: e.id,
              customerExternalId: customer,
              type: 'prop.event',
              eventTime: timestampFromDate(new Date(e.time)),
              // Values arrive as JSON numbers or as strings holding one (between spaces, in exponent form or
              // not); all count the same.
              properties: { v: [Number(e.v), ` ${e.v} `, new Decimal(e.v).toFixed()][e.id.length % 3] ?? e.v, u: e.u },
            })),
          });
        }
        const want = expected(events, from, from + length);
        // Exact with the batches' rollup log rows pending (some maybe folded by the background publisher), and
        // again once the whole log is folded into the rollups.
        for (const folded of [false, true]) {
          if (folded) while ((await usage.context.db.transaction((em) => compactRollups(em, 7))) > 0);
          for (const meter of METERS) {
            const res = await client.getPeriodUsage({
              customerExternalId: customer,
              meterKey: meter.key,
              period: {
                startTime: timestampFromDate(new Date(from)),
                endTime: timestampFromDate(new Date(from + length)),
              },
            });
            expect([meter.key, folded, new Decimal(res.value).toFixed()]).toEqual([meter.key, folded, want[meter.key]]);
          }
        }
      },
    ),
    { numRuns: 40 },
  );
});

test('edges before minute rollups existed (events stored before the upgrade) are read from raw events', async () => {
  const customer = 'before-minutes';
  const at = (minutes: number) => new Date(base + 3 * HOUR + minutes * 60_000);
  await client.ingestEvents({
    events: [5, 12.5, 30, 47].map((m, i) => ({
      id: `old-${i}`,
      customerExternalId: customer,
      type: 'prop.event',
      eventTime: timestampFromDate(at(m)),
      properties: { v: i + 1, u: 'x' },
    })),
  });
  // Fold everything, then make these minutes look as if they predate minute rollups.
  while ((await usage.context.db.transaction((em) => compactRollups(em, 1_000))) > 0);
  await usage.context.db.transaction(async (em) => {
    await queryBound(em, "delete from usage_rollup_minute where customer_external_id = 'before-minutes'", []);
    await queryBound(em, 'update usage_minute_rollups set since = $1', [at(60)]);
  });
  try {
    const res = await client.getPeriodUsage({
      customerExternalId: customer,
      meterKey: 'p_sum',
      period: { startTime: timestampFromDate(at(10)), endTime: timestampFromDate(at(40)) },
    });
    expect([res.value, res.eventCount]).toEqual(['5', 2n]);
  } finally {
    await usage.context.db.transaction((em) =>
      queryBound(em, "update usage_minute_rollups set since = '-infinity'", []),
    );
  }
});
