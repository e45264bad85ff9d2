// Reads and writes of catalog rows. No business rules here: use cases in service/ decide, this persists.
import type { Em } from '@billing/kit/db';
import { AddOnSchema, FeatureSchema, PlanStatus } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { MessageShape } from '@bufbuild/protobuf';
import { LockMode } from '@mikro-orm/core';
import type { CatalogLookup, Feature, Meter, Plan, PlanVersion, PlanVersionSpec } from '../domain/types.ts';
import { AddOnRow, type DocumentEntity, FeatureRow, MeterRow, PlanRow, PlanVersionRow } from './entities.ts';
import {
  type DocumentSchema,
  fromDbDocument,
  fromDbMeter,
  fromDbPlan,
  fromDbPlanVersion,
  toDbDocumentBody,
  toDbMeterBody,
  toDbPlanSpec,
  type VersionStatusValue,
} from './mapping.ts';

/** Reads and writes of a document table (features, add-ons), typed by its protobuf schema. */
function documentTable<S extends DocumentSchema>(entity: DocumentEntity, schema: S) {
  return {
    /** The document with this key, if any. */
    async find(em: Em, key: string): Promise<MessageShape<S> | undefined> {
      const row = await em.findOne(entity, { key });
      return row ? fromDbDocument(schema, row) : undefined;
    },

    /** A page of documents ordered by key, after `after`. */
    async list(em: Em, page: { size: number; after: string | undefined; includeArchived: boolean }) {
      const rows = await em.find(
        entity,
        {
          ...(page.after === undefined ? {} : { key: { $gt: page.after } }),
          ...(page.includeArchived ? {} : { archived: false }),
        },
        { orderBy: { key: 'asc' }, limit: page.size + 1 },
      );
      return rows.map((row) => fromDbDocument(schema, row));
    },

    /** Inserts or replaces a document. */
    async save(em: Em, document: MessageShape<S> & { key: string; archived: boolean }, now: Date) {
      const values = { body: toDbDocumentBody(schema, document), archived: document.archived, updatedAt: now };
      const existing = await em.findOne(entity, { key: document.key });
      const row = existing
        ? em.assign(existing, values)
        : em.create(entity, { key: document.key, createdAt: now, ...values });
      await em.flush();
      return fromDbDocument(schema, row);
    },
  };
}

/** The features. */
export const features = documentTable(FeatureRow, FeatureSchema);

/** The add-ons. */
export const addOns = documentTable(AddOnRow, AddOnSchema);

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

/** Marks a meter archived and returns it. */
export async function archiveMeterRow(em: Em, key: string): Promise<Meter> {
  const row = await em.findOneOrFail(MeterRow, { key });
  row.archived = true;
  await em.flush();
  return fromDbMeter(row);
}

/** Every feature and meter, for validating plans and add-ons (a catalog holds hundreds at most). */
export async function loadLookup(em: Em): Promise<CatalogLookup & { features: Feature[]; meters: Meter[] }> {
  const allFeatures = await features.list(em, { size: 100_000, after: undefined, includeArchived: true });
  const meters = (await em.find(MeterRow, {})).map(fromDbMeter);
  const featureByKey = new Map(allFeatures.map((f) => [f.key, f]));
  const meterByKey = new Map(meters.map((m) => [m.key, m]));
  return {
    features: allFeatures,
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
