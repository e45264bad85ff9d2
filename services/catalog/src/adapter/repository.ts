// Reads and writes of catalog rows. No business rules here: use cases in service/ decide, this persists.
import type { Em } from '@billing/kit/db';
import { PlanStatus } from '@billing/proto/billing/catalog/v1/resources_pb';
import { LockMode } from '@mikro-orm/core';
import type { AddOn, CatalogLookup, Feature, Meter, Plan, PlanVersion, PlanVersionSpec } from '../domain/types.ts';
import { AddOnRow, FeatureRow, MeterRow, PlanRow, PlanVersionRow } from './entities.ts';
import {
  fromDbAddOn,
  fromDbFeature,
  fromDbMeter,
  fromDbPlan,
  fromDbPlanVersion,
  toDbAddOnBody,
  toDbFeatureBody,
  toDbMeterBody,
  toDbPlanSpec,
  type VersionStatusValue,
} from './mapping.ts';

/** The feature with this key, if any. */
export async function findFeature(em: Em, key: string): Promise<Feature | undefined> {
  const row = await em.findOne(FeatureRow, { key });
  return row ? fromDbFeature(row) : undefined;
}

/** A page of features ordered by key, after `after`. */
export async function listFeatures(
  em: Em,
  page: { size: number; after: string | undefined; includeArchived: boolean },
): Promise<Feature[]> {
  const rows = await em.find(
    FeatureRow,
    {
      ...(page.after === undefined ? {} : { key: { $gt: page.after } }),
      ...(page.includeArchived ? {} : { archived: false }),
    },
    { orderBy: { key: 'asc' }, limit: page.size + 1 },
  );
  return rows.map(fromDbFeature);
}

/** Inserts or replaces a feature. */
export async function saveFeature(em: Em, feature: Feature, now: Date): Promise<Feature> {
  const existing = await em.findOne(FeatureRow, { key: feature.key });
  if (existing) {
    existing.body = toDbFeatureBody(feature);
    existing.archived = feature.archived;
    existing.updatedAt = now;
    await em.flush();
    return fromDbFeature(existing);
  }
  const row = em.create(FeatureRow, {
    key: feature.key,
    body: toDbFeatureBody(feature),
    archived: feature.archived,
    createdAt: now,
    updatedAt: now,
  });
  await em.flush();
  return fromDbFeature(row);
}

/** The meter with this key, if any. */
export async function findMeter(em: Em, key: string): Promise<Meter | undefined> {
  const row = await em.findOne(MeterRow, { key });
  return row ? fromDbMeter(row) : undefined;
}

/** A page of meters ordered by key. */
export async function listMeters(em: Em, page: { size: number; after: string | undefined }): Promise<Meter[]> {
  const rows = await em.find(MeterRow, page.after === undefined ? {} : { key: { $gt: page.after } }, {
    orderBy: { key: 'asc' },
    limit: page.size + 1,
  });
  return rows.map(fromDbMeter);
}

/** Inserts a meter. */
export async function insertMeter(em: Em, meter: Meter, now: Date): Promise<Meter> {
  const row = em.create(MeterRow, { key: meter.key, body: toDbMeterBody(meter), archived: false, createdAt: now });
  await em.flush();
  return fromDbMeter(row);
}

/** Every feature and meter, for validating plans and add-ons (a catalog holds hundreds at most). */
export async function loadLookup(em: Em): Promise<CatalogLookup & { features: Feature[]; meters: Meter[] }> {
  const [features, meters] = [
    (await em.find(FeatureRow, {})).map(fromDbFeature),
    (await em.find(MeterRow, {})).map(fromDbMeter),
  ];
  const featureByKey = new Map(features.map((f) => [f.key, f]));
  const meterByKey = new Map(meters.map((m) => [m.key, m]));
  return {
    features,
    meters,
    feature: (key) => featureByKey.get(key),
    meter: (key) => meterByKey.get(key),
  };
}

/** The plan with this key, locked for update when `lock` is set (pessimistic write lock). */
export async function findPlan(em: Em, key: string, lock = false): Promise<Plan | undefined> {
  const row = await em.findOne(PlanRow, { key }, lock ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
  return row ? fromDbPlan(row) : undefined;
}

/** A page of plans ordered by key. */
export async function listPlans(
  em: Em,
  page: { size: number; after: string | undefined; includeArchived: boolean },
): Promise<Plan[]> {
  const rows = await em.find(
    PlanRow,
    {
      ...(page.after === undefined ? {} : { key: { $gt: page.after } }),
      ...(page.includeArchived ? {} : { status: 'active' }),
    },
    { orderBy: { key: 'asc' }, limit: page.size + 1 },
  );
  return rows.map(fromDbPlan);
}

/** Inserts or updates a plan's row. */
export async function savePlan(em: Em, plan: Plan, archivedAt: Date | null, createdAt: Date): Promise<void> {
  const values = {
    status: plan.status === PlanStatus.ARCHIVED ? 'archived' : 'active',
    latestVersion: plan.latestVersion,
    draftVersion: plan.draftVersion,
    archivedAt,
  };
  const existing = await em.findOne(PlanRow, { key: plan.key });
  if (existing) em.assign(existing, values);
  else em.create(PlanRow, { key: plan.key, createdAt, ...values });
  await em.flush();
}

/** One version of a plan, if it exists. */
export async function findPlanVersion(em: Em, planKey: string, version: number): Promise<PlanVersion | undefined> {
  const row = await em.findOne(PlanVersionRow, { planKey, version });
  return row ? fromDbPlanVersion(row) : undefined;
}

/** A page of a plan's versions, newest first, with versions below `before`. */
export async function listPlanVersions(
  em: Em,
  planKey: string,
  page: { size: number; before: number | undefined },
): Promise<PlanVersion[]> {
  const rows = await em.find(
    PlanVersionRow,
    { planKey, ...(page.before === undefined ? {} : { version: { $lt: page.before } }) },
    { orderBy: { version: 'desc' }, limit: page.size + 1 },
  );
  return rows.map(fromDbPlanVersion);
}

/** Writes the content of a draft version (creating the row if needed). */
export async function saveDraft(em: Em, planKey: string, version: number, spec: PlanVersionSpec, now: Date) {
  const existing = await em.findOne(PlanVersionRow, { planKey, version });
  if (existing) {
    existing.spec = toDbPlanSpec(spec);
    existing.updatedAt = now;
  } else {
    em.create(PlanVersionRow, { planKey, version, status: 'draft', spec: toDbPlanSpec(spec), updatedAt: now });
  }
  await em.flush();
}

/** Changes the status of a version (published content itself never changes). */
export async function setVersionStatus(
  em: Em,
  planKey: string,
  version: number,
  status: VersionStatusValue,
  publishedAt?: Date,
): Promise<void> {
  const row = await em.findOneOrFail(PlanVersionRow, { planKey, version });
  row.status = status;
  if (publishedAt) row.publishedAt = publishedAt;
  await em.flush();
}

/** Marks every published version of a plan archived. */
export async function archivePublishedVersions(em: Em, planKey: string): Promise<void> {
  await em.nativeUpdate(PlanVersionRow, { planKey, status: 'published' }, { status: 'archived' });
}

/** The add-on with this key, if any. */
export async function findAddOn(em: Em, key: string): Promise<AddOn | undefined> {
  const row = await em.findOne(AddOnRow, { key });
  return row ? fromDbAddOn(row) : undefined;
}

/** A page of add-ons ordered by key. */
export async function listAddOns(
  em: Em,
  page: { size: number; after: string | undefined; includeArchived: boolean },
): Promise<AddOn[]> {
  const rows = await em.find(
    AddOnRow,
    {
      ...(page.after === undefined ? {} : { key: { $gt: page.after } }),
      ...(page.includeArchived ? {} : { archived: false }),
    },
    { orderBy: { key: 'asc' }, limit: page.size + 1 },
  );
  return rows.map(fromDbAddOn);
}

/** Inserts or replaces an add-on. */
export async function saveAddOn(em: Em, addOn: AddOn, now: Date): Promise<AddOn> {
  const existing = await em.findOne(AddOnRow, { key: addOn.key });
  if (existing) {
    existing.body = toDbAddOnBody(addOn);
    existing.archived = addOn.archived;
    existing.updatedAt = now;
    await em.flush();
    return fromDbAddOn(existing);
  }
  const row = em.create(AddOnRow, {
    key: addOn.key,
    body: toDbAddOnBody(addOn),
    archived: addOn.archived,
    createdAt: now,
    updatedAt: now,
  });
  await em.flush();
  return fromDbAddOn(row);
}
