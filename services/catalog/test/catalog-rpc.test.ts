// The CatalogService over real gRPC against a real server on PostgreSQL, outcome by outcome.

import { queryBound } from '@billing/kit/db';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { CatalogChangeKind, CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { PlanStatus, VersionStatus } from '@billing/proto/billing/catalog/v1/resources_pb';
import { BadRequestSchema } from '@billing/proto/google/rpc/error_details_pb';
import {
  buildMinutes,
  buildMinutesMeter,
  privateRepos,
  reason,
  rpcError,
  startTestService,
  type TestService,
  teamSpec,
  violations,
} from '@billing/test/harness';
import { type Client, Code, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { catalogService } from '../src/definition.ts';

let service: TestService;
let client: Client<typeof CatalogService>;
const bus = createMemoryBus();
let n = 0;
const rid = () => `req-${Date.now()}-${n++}`;

beforeAll(async () => {
  service = await startTestService(catalogService, { bus });
  client = createClient(CatalogService, createGrpcTransport({ baseUrl: service.baseUrl }));
  await client.createMeter({ requestId: rid(), meter: buildMinutesMeter });
  await client.createFeature({ requestId: rid(), feature: privateRepos });
  await client.createFeature({ requestId: rid(), feature: buildMinutes });
});

afterAll(async () => {
  await service.destroy();
  await bus.close();
});

describe('plans', () => {
  test('a plan is drafted, published as version 1, and read back unchanged', async () => {
    const created = await client.createPlan({ requestId: rid(), key: 'team', spec: teamSpec() });
    expect(created.plan).toMatchObject({ key: 'team', status: PlanStatus.ACTIVE, latestVersion: 0, draftVersion: 1 });
    expect(created.draft).toMatchObject({ version: 1, status: VersionStatus.DRAFT });
    const published = await client.publishPlan({ requestId: rid(), planKey: 'team' });
    expect(published.version).toMatchObject({ planKey: 'team', version: 1, status: VersionStatus.PUBLISHED });
    const { version } = await client.getPlanVersion({ planKey: 'team' });
    expect(version?.spec?.charges.map((c) => [c.key, c.prices[0]?.unitAmount, c.includedUnits])).toEqual([
      ['seats', '15.00', ''],
      ['build_minutes', '0.005', '500'],
    ]);
    expect((await client.getPlan({ planKey: 'team' })).plan).toMatchObject({ latestVersion: 1, draftVersion: 0 });
  });

  test('a second version supersedes the first, which stays readable and unchanged', async () => {
    await client.createPlan({ requestId: rid(), key: 'pro', spec: teamSpec({ name: 'Pro' }) });
    await client.publishPlan({ requestId: rid(), planKey: 'pro' });
    const v2 = teamSpec({ name: 'Pro' });
    const seats = v2.charges[0]?.prices[0];
    if (seats) seats.unitAmount = '19.00';
    expect((await client.updatePlanDraft({ requestId: rid(), planKey: 'pro', spec: v2 })).draft?.version).toBe(2);
    await client.publishPlan({ requestId: rid(), planKey: 'pro' });
    const one = await client.getPlanVersion({ planKey: 'pro', version: 1 });
    const two = await client.getPlanVersion({ planKey: 'pro' });
    expect(one.version?.status).toBe(VersionStatus.SUPERSEDED);
    expect(one.version?.spec?.charges[0]?.prices[0]?.unitAmount).toBe('15.00');
    expect(two.version).toMatchObject({ version: 2, status: VersionStatus.PUBLISHED });
    expect(two.version?.spec?.charges[0]?.prices[0]?.unitAmount).toBe('19.00');
    const listed = await client.listPlanVersions({ planKey: 'pro' });
    expect(listed.versions.map((v) => v.version)).toEqual([2, 1]);
  });

  test('a published version never changes: editing it fails with FAILED_PRECONDITION', async () => {
    await client.createPlan({ requestId: rid(), key: 'frozen', spec: teamSpec() });
    await client.publishPlan({ requestId: rid(), planKey: 'frozen' });
    const err = await rpcError(
      client.updatePlanDraft({ requestId: rid(), planKey: 'frozen', spec: teamSpec({ name: 'X' }), version: 1 }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(reason(err)).toBe('VERSION_IMMUTABLE');
    expect((await client.getPlanVersion({ planKey: 'frozen', version: 1 })).version?.spec?.name).toBe('Team');
  });

  test('publishing without a draft fails with FAILED_PRECONDITION', async () => {
    const err = await rpcError(client.publishPlan({ requestId: rid(), planKey: 'team' }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(reason(err)).toBe('NO_DRAFT');
  });

  test('an invalid plan is refused with the offending fields and nothing is created', async () => {
    const spec = teamSpec({ currencyCodes: ['usd'] });
    const err = await rpcError(client.createPlan({ requestId: rid(), key: 'broken', spec }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violations(err)).toContain('spec.currency_codes[0]');
    expect((await rpcError(client.getPlan({ planKey: 'broken' }))).code).toBe(Code.NotFound);
  });

  test('plan keys are unique', async () => {
    const err = await rpcError(client.createPlan({ requestId: rid(), key: 'team', spec: teamSpec() }));
    expect(err.code).toBe(Code.AlreadyExists);
    expect(reason(err)).toBe('PLAN_EXISTS');
  });

  test('archiving a plan archives its published versions', async () => {
    await client.createPlan({ requestId: rid(), key: 'legacy', spec: teamSpec() });
    await client.publishPlan({ requestId: rid(), planKey: 'legacy' });
    const { plan } = await client.archivePlan({ requestId: rid(), planKey: 'legacy' });
    expect(plan?.status).toBe(PlanStatus.ARCHIVED);
    expect((await client.getPlanVersion({ planKey: 'legacy', version: 1 })).version?.status).toBe(
      VersionStatus.ARCHIVED,
    );
  });

  test('an archived plan is listed only when archived plans are asked for', async () => {
    const active = await client.listPlans({ pageSize: 500 });
    expect(active.plans.map((p) => p.key)).not.toContain('legacy');
    const all = await client.listPlans({ pageSize: 500, includeArchived: true });
    expect(all.plans.map((p) => p.key)).toContain('legacy');
  });

  test("an archived plan's draft cannot be edited: FAILED_PRECONDITION PLAN_ARCHIVED", async () => {
    const err = await rpcError(client.updatePlanDraft({ requestId: rid(), planKey: 'legacy', spec: teamSpec() }));
    expect(reason(err)).toBe('PLAN_ARCHIVED');
  });
});

describe('meters', () => {
  test('the events of a call carry its traceparent header (W3C trace context)', async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await client.createMeter(
      { requestId: rid(), meter: { ...buildMinutesMeter, key: 'traced_minutes' } },
      { headers: { traceparent } },
    );
    await client.createMeter({ requestId: rid(), meter: { ...buildMinutesMeter, key: 'untraced_minutes' } });
    const rows = await queryBound<{ aggregate_id: string; traceparent: string | null }>(
      service.context.db.fork(),
      'select aggregate_id, traceparent from outbox_event where aggregate_id like $1 order by 1',
      ['%traced_minutes'],
    );
    expect(rows.map((r) => [r.aggregate_id.replace(/^.*:/, ''), r.traceparent])).toEqual([
      ['traced_minutes', traceparent],
      ['untraced_minutes', null],
    ]);
  });

  test('an archived meter can no longer be used by a new feature', async () => {
    await client.createMeter({ requestId: rid(), meter: { ...buildMinutesMeter, key: 'old_minutes' } });
    const { meter } = await client.archiveMeter({ requestId: rid(), key: 'old_minutes' });
    expect(meter?.archived).toBe(true);
    const err = await rpcError(
      client.createFeature({
        requestId: rid(),
        feature: { key: 'old_feature', name: 'Old', kind: buildMinutes.kind, meterKey: 'old_minutes' },
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.findDetails(BadRequestSchema)[0]?.fieldViolations).toEqual([
      expect.objectContaining({ field: 'feature.meter_key', description: 'the meter is archived' }),
    ]);
  });
});

describe('required fields and quoted values', () => {
  test.each([
    ['GetFeature', 'key', () => client.getFeature({})],
    ['GetMeter', 'key', () => client.getMeter({})],
    ['GetPlan', 'plan_key', () => client.getPlan({})],
    ['GetPlanVersion', 'plan_key', () => client.getPlanVersion({})],
    ['ListPlanVersions', 'plan_key', () => client.listPlanVersions({})],
    ['GetAddOn', 'key', () => client.getAddOn({})],
  ])('%s without its key is INVALID_ARGUMENT naming %s', async (_rpc, field, call) => {
    const err = await rpcError(call());
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, [field]]);
  });

  test.each([
    ['ArchiveFeature', 'key', () => client.archiveFeature({ requestId: rid() })],
    ['ArchiveMeter', 'key', () => client.archiveMeter({ requestId: rid() })],
    ['ArchiveAddOn', 'key', () => client.archiveAddOn({ requestId: rid() })],
    ['PublishPlan', 'plan_key', () => client.publishPlan({ requestId: rid() })],
    ['ArchivePlan', 'plan_key', () => client.archivePlan({ requestId: rid() })],
    ['UpdatePlanDraft', 'plan_key', () => client.updatePlanDraft({ requestId: rid(), spec: teamSpec() })],
    ['UpdatePlanDraft', 'spec', () => client.updatePlanDraft({ requestId: rid(), planKey: 'team' })],
    ['CreatePlan', 'spec', () => client.createPlan({ requestId: rid(), key: 'no_spec' })],
    ['CreateFeature', 'feature', () => client.createFeature({ requestId: rid() })],
    ['CreateMeter', 'meter', () => client.createMeter({ requestId: rid() })],
    ['UpsertAddOn', 'add_on', () => client.upsertAddOn({ requestId: rid() })],
  ])('%s without its %s is INVALID_ARGUMENT naming it', async (_rpc, field, call) => {
    const err = await rpcError(call());
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, [field]]);
  });

  test('a negative version is INVALID_ARGUMENT naming version', async () => {
    const err = await rpcError(client.getPlanVersion({ planKey: 'team', version: -1 }));
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['version']]);
  });

  test('a NOT_FOUND quotes the key it did not find, cut to a prefix', async () => {
    const key = `missing_${'k'.repeat(56)}`;
    const err = await rpcError(client.getPlan({ planKey: key }));
    expect([err.code, err.rawMessage]).toEqual([Code.NotFound, `no plan "${key.slice(0, 40)}…"`]);
  });
});

describe('idempotency and paging', () => {
  test('a retry with the same request_id returns the first answer and changes nothing', async () => {
    const requestId = rid();
    const feature = { key: 'sso', name: 'SSO', kind: privateRepos.kind };
    const first = await client.createFeature({ requestId, feature });
    const again = await client.createFeature({ requestId, feature });
    expect(again).toEqual(first);
  });

  test('the same request_id with other parameters is refused', async () => {
    const requestId = rid();
    await client.createFeature({
      requestId,
      feature: { key: 'audit_log', name: 'Audit log', kind: privateRepos.kind },
    });
    const err = await rpcError(
      client.createFeature({ requestId, feature: { key: 'audit_logs', name: 'Audit log', kind: privateRepos.kind } }),
    );
    expect(err.code).toBe(Code.AlreadyExists);
    expect(reason(err)).toBe('IDEMPOTENCY_KEY_REUSED');
    expect((await rpcError(client.getFeature({ key: 'audit_logs' }))).code).toBe(Code.NotFound);
  });

  test('a missing request_id is INVALID_ARGUMENT naming the field', async () => {
    const err = await rpcError(
      client.createFeature({ feature: { key: 'x_feature', name: 'X', kind: privateRepos.kind } }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violations(err)).toEqual(['request_id']);
  });

  test('lists page with page_size and page_token until the end', async () => {
    for (const key of ['page_a', 'page_b', 'page_c']) {
      await client.createFeature({ requestId: rid(), feature: { key, name: key, kind: privateRepos.kind } });
    }
    const keys: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = await client.listFeatures({ pageSize: 2, pageToken });
      keys.push(...page.features.map((f) => f.key));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken);
    expect(keys).toEqual([...keys].sort());
    expect(keys).toEqual(expect.arrayContaining(['page_a', 'page_b', 'page_c', 'private_repos', 'build_minutes']));
    expect(new Set(keys).size).toBe(keys.length);
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(keys.length / 2));
  });

  test('a page token from another list is refused', async () => {
    const first = await client.listFeatures({ pageSize: 1 });
    const err = await rpcError(
      client.listFeatures({ pageSize: 1, pageToken: first.nextPageToken, includeArchived: true }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violations(err)).toEqual(['page_token']);
  });
});

describe('ApplyCatalog', () => {
  const document = (seatPrice: string) =>
    [
      'meters:',
      '  - { key: storage_gb, name: Storage, event_type: storage.sampled, aggregation: max, value_property: gb }',
      'features:',
      '  - { key: storage, name: Storage, kind: metered, meter: storage_gb }',
      'plans:',
      '  - key: starter',
      '    name: Starter',
      '    interval: year',
      '    currencies: [USD, JPY]',
      '    charges:',
      `      - { key: seats, name: Seats, model: per_seat, timing: in_advance, prices: { USD: "${seatPrice}", JPY: "1500" } }`,
      '    entitlements:',
      '      - { feature: storage, limit: "100", enforcement: hard }',
    ].join('\n');

  test('a dry run returns the diff and changes nothing', async () => {
    const { changes, dryRun } = await client.applyCatalog({
      requestId: rid(),
      document: document('10.00'),
      dryRun: true,
    });
    expect(dryRun).toBe(true);
    expect(changes.map((c) => [c.kind, c.key, c.version])).toEqual([
      [CatalogChangeKind.METER_CREATED, 'storage_gb', 0],
      [CatalogChangeKind.FEATURE_CREATED, 'storage', 0],
      [CatalogChangeKind.PLAN_ADDED, 'starter', 1],
    ]);
    expect((await rpcError(client.getPlan({ planKey: 'starter' }))).code).toBe(Code.NotFound);
    expect((await rpcError(client.getMeter({ key: 'storage_gb' }))).code).toBe(Code.NotFound);
  });

  test('applying publishes what the document holds', async () => {
    const applied = await client.applyCatalog({ requestId: rid(), document: document('10.00') });
    expect(applied.changes).toHaveLength(3);
    expect((await client.getPlanVersion({ planKey: 'starter' })).version?.spec?.charges[0]?.prices[1]).toMatchObject({
      currencyCode: 'JPY',
      unitAmount: '1500',
    });
  });

  test('applying the same document again changes nothing', async () => {
    expect((await client.applyCatalog({ requestId: rid(), document: document('10.00') })).changes).toEqual([]);
  });

  test('a new price in the document is a new version; the old one keeps its price', async () => {
    const changed = await client.applyCatalog({ requestId: rid(), document: document('12.00') });
    expect(changed.changes.map((c) => [c.kind, c.key, c.version])).toEqual([
      [CatalogChangeKind.PLAN_VERSION_PUBLISHED, 'starter', 2],
    ]);
    expect(
      (await client.getPlanVersion({ planKey: 'starter', version: 1 })).version?.spec?.charges[0]?.prices[0]
        ?.unitAmount,
    ).toBe('10.00');
  });

  test('with archive_missing, a dry run lists what the document no longer names, and changes nothing', async () => {
    const { changes } = await client.applyCatalog({
      requestId: rid(),
      document: document('12.00'),
      dryRun: true,
      archiveMissing: true,
    });
    const planned = changes.map((c) => `${CatalogChangeKind[c.kind]} ${c.key}`);
    expect(planned).toEqual(
      expect.arrayContaining(['PLAN_ARCHIVED team', 'FEATURE_ARCHIVED private_repos', 'METER_ARCHIVED build_minutes']),
    );
    expect(planned).not.toContain('PLAN_ARCHIVED legacy');
    expect(planned).not.toContain('PLAN_ARCHIVED starter');
    expect(planned.indexOf('PLAN_ARCHIVED team')).toBeLessThan(planned.indexOf('METER_ARCHIVED build_minutes'));
    expect((await client.getPlan({ planKey: 'team' })).plan?.status).toBe(PlanStatus.ACTIVE);
  });

  test('an invalid document is refused whole, with paths, and changes nothing', async () => {
    const bad = `${document('10.00').replace('starter', 'starter_two')}\n  - { key: Bad, name: B, interval: month, currencies: [USD] }`;
    const err = await rpcError(client.applyCatalog({ requestId: rid(), document: bad }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violations(err)).toEqual(['document.plans[1].key']);
    expect((await rpcError(client.getPlan({ planKey: 'starter_two' }))).code).toBe(Code.NotFound);
  });
});
