// The CatalogService handlers: read the request into a use case's input, call the use case, convert the result.
// Nothing else. Inputs are read before a mutation starts, so a refused request touches nothing.

import { mutate } from '@billing/kit/mutation';
import type { ServiceContext } from '@billing/kit/service-context';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import type { ServiceImpl } from '@connectrpc/connect';
import {
  readApplyCatalog,
  readPlanDraft,
  readPlanVersionRef,
  requiredKey,
  requiredMessage,
} from '../domain/validate.ts';
import { applyCatalog } from '../service/apply-catalog.ts';
import { archiveAddOn } from '../service/archive-add-on.ts';
import { archiveFeature } from '../service/archive-feature.ts';
import { archiveMeter } from '../service/archive-meter.ts';
import { archivePlan } from '../service/archive-plan.ts';
import { createFeature } from '../service/create-feature.ts';
import { createMeter } from '../service/create-meter.ts';
import { createPlan } from '../service/create-plan.ts';
import { getAddOn } from '../service/get-add-on.ts';
import { getFeature } from '../service/get-feature.ts';
import { getMeter } from '../service/get-meter.ts';
import { getPlan } from '../service/get-plan.ts';
import { getPlanVersion } from '../service/get-plan-version.ts';
import { listAddOns } from '../service/list-add-ons.ts';
import { listFeatures } from '../service/list-features.ts';
import { listMeters } from '../service/list-meters.ts';
import { listPlanVersions } from '../service/list-plan-versions.ts';
import { listPlans } from '../service/list-plans.ts';
import { publishPlan } from '../service/publish-plan.ts';
import { updatePlanDraft } from '../service/update-plan-draft.ts';
import { upsertAddOn } from '../service/upsert-add-on.ts';

const M = CatalogService.method;

/** Builds the CatalogService implementation over a service context. */
export function catalogHandlers(context: ServiceContext): ServiceImpl<typeof CatalogService> {
  const read = () => context.db.fork();
  return {
    createFeature(req) {
      const feature = requiredMessage(req.feature, 'feature');
      return mutate(context, M.createFeature, req, async (s) => ({ feature: await createFeature(s, feature) }));
    },

    getFeature: async (req) => ({ feature: await getFeature(read(), requiredKey(req.key, 'key')) }),

    async listFeatures(req) {
      const { items, nextPageToken } = await listFeatures(read(), req);
      return { features: items, nextPageToken };
    },

    archiveFeature(req) {
      const key = requiredKey(req.key, 'key');
      return mutate(context, M.archiveFeature, req, async (s) => ({ feature: await archiveFeature(s, key) }));
    },

    createMeter(req) {
      const meter = requiredMessage(req.meter, 'meter');
      return mutate(context, M.createMeter, req, async (s) => ({ meter: await createMeter(s, meter) }));
    },

    getMeter: async (req) => ({ meter: await getMeter(read(), requiredKey(req.key, 'key')) }),

    async listMeters(req) {
      const { items, nextPageToken } = await listMeters(read(), req);
      return { meters: items, nextPageToken };
    },

    archiveMeter(req) {
      const key = requiredKey(req.key, 'key');
      return mutate(context, M.archiveMeter, req, async (s) => ({ meter: await archiveMeter(s, key) }));
    },

    createPlan(req) {
      const spec = requiredMessage(req.spec, 'spec');
      return mutate(context, M.createPlan, req, (s) => createPlan(s, req.key, spec));
    },

    updatePlanDraft(req) {
      const input = readPlanDraft(req);
      return mutate(context, M.updatePlanDraft, req, async (s) => ({ draft: await updatePlanDraft(s, input) }));
    },

    publishPlan(req) {
      const planKey = requiredKey(req.planKey, 'plan_key');
      return mutate(context, M.publishPlan, req, async (s) => ({ version: await publishPlan(s, planKey) }));
    },

    archivePlan(req) {
      const planKey = requiredKey(req.planKey, 'plan_key');
      return mutate(context, M.archivePlan, req, async (s) => ({ plan: await archivePlan(s, planKey) }));
    },

    getPlan: async (req) => ({ plan: await getPlan(read(), requiredKey(req.planKey, 'plan_key')) }),

    async listPlans(req) {
      const { items, nextPageToken } = await listPlans(read(), req);
      return { plans: items, nextPageToken };
    },

    getPlanVersion: async (req) => ({ version: await getPlanVersion(read(), readPlanVersionRef(req)) }),

    async listPlanVersions(req) {
      const planKey = requiredKey(req.planKey, 'plan_key');
      const { items, nextPageToken } = await listPlanVersions(read(), planKey, req);
      return { versions: items, nextPageToken };
    },

    upsertAddOn(req) {
      const addOn = requiredMessage(req.addOn, 'add_on');
      return mutate(context, M.upsertAddOn, req, async (s) => ({ addOn: await upsertAddOn(s, addOn) }));
    },

    getAddOn: async (req) => ({ addOn: await getAddOn(read(), requiredKey(req.key, 'key')) }),

    async listAddOns(req) {
      const { items, nextPageToken } = await listAddOns(read(), req);
      return { addOns: items, nextPageToken };
    },

    archiveAddOn(req) {
      const key = requiredKey(req.key, 'key');
      return mutate(context, M.archiveAddOn, req, async (s) => ({ addOn: await archiveAddOn(s, key) }));
    },

    applyCatalog(req) {
      const input = readApplyCatalog(req);
      return mutate(context, M.applyCatalog, req, async (s) => ({
        changes: await applyCatalog(s, input),
        dryRun: input.dryRun,
      }));
    },
  };
}
