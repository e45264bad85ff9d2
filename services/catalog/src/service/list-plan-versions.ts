import type { Em } from '@billing/kit/db';
import { listPage, type PageParameters } from '@billing/kit/pagination';
import { listPlanVersions as listPlanVersionRows } from '../adapter/plan-version-repository.ts';
import type { PlanVersion } from '../domain/types.ts';

/** A page of a plan's versions, newest first (none for an unknown plan). */
export async function listPlanVersions(em: Em, planKey: string, input: PageParameters) {
  return listPage(
    input,
    { plan: planKey },
    (page) =>
      listPlanVersionRows(em, planKey, {
        size: page.size,
        before: page.after === undefined ? undefined : Number(page.after),
      }),
    (version: PlanVersion) => String(version.version),
  );
}
