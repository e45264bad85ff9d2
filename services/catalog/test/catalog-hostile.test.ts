// Malformed and hostile input never yields INTERNAL and never changes state: random plan contents, keys,
// enum numbers, amounts and documents are sent to the catalog, and every answer is OK or a clean refusal.

import { createMemoryBus } from '@billing/kit/memory-bus';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import {
  buildMinutes,
  buildMinutesMeter,
  outcome,
  privateRepos,
  rpcError,
  startTestService,
  type TestService,
  violations,
} from '@billing/test/harness';
import { type Client, Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { catalogService } from '../src/definition.ts';

const bus = createMemoryBus();
let service: TestService;
let client: Client<typeof CatalogService>;
let n = 0;

beforeAll(async () => {
  service = await startTestService(catalogService, { bus });
  client = createClient(CatalogService, createGrpcTransport({ baseUrl: service.baseUrl }));
  await client.createMeter({ requestId: 'm', meter: buildMinutesMeter });
  await client.createFeature({ requestId: 'f1', feature: privateRepos });
  await client.createFeature({ requestId: 'f2', feature: buildMinutes });
});

afterAll(async () => {
  await service.destroy();
  await bus.close();
});

const CLEAN_REFUSALS = new Set([Code.InvalidArgument, Code.AlreadyExists, Code.FailedPrecondition, Code.NotFound]);

const text = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.constantFrom('', '0', '-1', '1e3', '0.0000000000001', '15.00', '9'.repeat(50), 'NaN'),
);
const enumNumber = fc.integer({ min: -2, max: 9 });
const tier = fc.record({ upTo: text, unitAmount: text, flatAmount: text });
const price = fc.record({
  currencyCode: fc.constantFrom('USD', 'EUR', 'JPY', 'usd', 'XXX', ''),
  unitAmount: text,
  tiers: fc.array(tier, { maxLength: 4 }),
  minimumAmount: text,
});
const charge = fc.record({
  key: fc.constantFrom('seats', 'minutes', 'Seats', '', 'x'.repeat(70)),
  name: text,
  model: enumNumber,
  timing: enumNumber,
  meterKey: fc.constantFrom('', 'build_minutes', 'nope'),
  includedUnits: text,
  packageSize: text,
  prices: fc.array(price, { maxLength: 3 }),
});
const entitlement = fc.record({
  featureKey: fc.constantFrom('private_repos', 'build_minutes', 'ghost', ''),
  value: fc.oneof(
    fc.record({ case: fc.constant('enabled' as const), value: fc.boolean() }),
    fc.record({
      case: fc.constant('metered' as const),
      value: fc.record({ limit: text, enforcement: enumNumber, overageAllowed: fc.boolean() }),
    }),
  ),
});
const spec = fc.record({
  name: text,
  description: text,
  interval: enumNumber,
  currencyCodes: fc.array(fc.constantFrom('USD', 'EUR', 'JPY', 'usd', 'ABC', ''), { maxLength: 3 }),
  trialDays: fc.integer({ min: -5, max: 1_000 }),
  charges: fc.array(charge, { maxLength: 3 }),
  entitlements: fc.array(entitlement, { maxLength: 3 }),
});

test('random plans are created or cleanly refused, and a refused plan leaves no trace', async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('fuzz', 'Fuzz', ''), spec, async (keyBase, randomSpec) => {
      const key = keyBase ? `${keyBase}_${n}` : '';
      const result = await outcome(client.createPlan({ requestId: `fuzz-${n++}`, key, spec: randomSpec as never }));
      if (result === 'ok') {
        await client.publishPlan({ requestId: `fuzz-${n++}`, planKey: key });
        return;
      }
      expect(CLEAN_REFUSALS.has(result)).toBe(true);
      if (key) expect(await outcome(client.getPlan({ planKey: key }))).toBe(Code.NotFound);
    }),
    { numRuns: 150 },
  );
});

test.each([
  [
    'an escaped NUL in JSON',
    '{"features":[{"key":"nul_json","name":"a\\u0000b","kind":"boolean"}]}',
    'document.features[0].name',
  ],
  [
    'a NUL escape in YAML',
    'features:\n  - key: nul_yaml\n    name: "Single\\0sign-on"\n    kind: boolean\n',
    'document.features[0].name',
  ],
  [
    'a lone surrogate in JSON',
    '{"features":[{"key":"lone","name":"\\ud800","kind":"boolean"}]}',
    'document.features[0].name',
  ],
  [
    "a NUL in a plan's currency",
    '{"plans":[{"key":"nul_currency","name":"P","interval":"month","currencies":["US\\u0000"]}]}',
    'document.plans[0].currencies[0]',
  ],
  [
    'a NUL in an object key',
    '{"features":[{"key":"nul_key","name":"x","kind":"boolean","b\\u0000d":1}]}',
    'document.features[0]["b\\u0000d"]',
  ],
])(
  'a document whose text reads as %s is refused naming the field, and nothing is applied',
  async (_, document, field) => {
    const err = await rpcError(client.applyCatalog({ requestId: `escaped-${n++}`, document }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(new Set(violations(err))).toEqual(new Set([field]));
    const features = await client.listFeatures({});
    expect(features.features.map((f) => f.key).filter((k) => ['nul_json', 'nul_yaml', 'lone'].includes(k))).toEqual([]);
  },
);

test('random catalog documents are applied or cleanly refused', async () => {
  const documents = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.json({ maxDepth: 4 }),
    fc.constantFrom(
      'plans: [',
      'plans:\n  - *a',
      '&a [*a, *a]',
      'meters: 5',
      'features:\n  - key: [1, 2]',
      `{"features":${'['.repeat(200_000)}${']'.repeat(200_000)}}`,
      '{"plans": null}',
    ),
  );
  await fc.assert(
    fc.asyncProperty(documents, async (document) => {
      const result = await outcome(client.applyCatalog({ requestId: `doc-${n++}`, document, dryRun: true }));
      expect(result === 'ok' || CLEAN_REFUSALS.has(result)).toBe(true);
    }),
    { numRuns: 150 },
  );
});
