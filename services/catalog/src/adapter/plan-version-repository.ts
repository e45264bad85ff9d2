// Reads and writes of plan version rows. Published versions are never updated except their status.
import type { Em } from '@billing/kit/db';
import type { PlanVersion, PlanVersionSpec } from '../domain/types.ts';
import { PlanVersionRow } from './entities.ts';
import { fromDbPlanVersion, toDbPlanSpec, type VersionStatusValue } from './mapping.ts';

/** One version of a plan, if it exists. */
export async function findPlanVersion(em: Em, planKey: string, version: number): Promise<PlanVersion | undefined> {
  const row = await em.findOne(PlanVersionRow, { planKey, version });
  return row ? fromDbPlanVersion(row) : undefined;
}

/** A page of a plan's versions, newest first, below `before` (one more than `size`, to tell a next page). */
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
