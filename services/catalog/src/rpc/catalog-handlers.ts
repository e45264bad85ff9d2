// The CatalogService handlers: convert the request, call the use case, convert the result. Nothing else.

import { InvalidArgumentError, NotFoundError } from '@billing/kit/errors';
import { mutate } from '@billing/kit/mutation';
import { listPage } from '@billing/kit/pagination';
import type { ServiceContext } from '@billing/kit/service-context';
import { CatalogFormat, CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import type { ServiceImpl } from '@connectrpc/connect';
import * as repo from '../adapter/repository.ts';
import { readCatalogDocument } from '../domain/catalog-document.ts';
import { applyCatalog } from '../service/apply-catalog.ts';
import { archiveAddOn } from '../service/archive-add-on.ts';
import { archiveFeature } from '../service/archive-feature.ts';
import { archiveMeter } from '../service/archive-meter.ts';
import { archivePlan } from '../service/archive-plan.ts';
import { createFeature } from '../service/create-feature.ts';
import { createMeter } from '../service/create-meter.ts';
import { createPlan } from '../service/create-plan.ts';
import { publishPlan } from '../service/publish-plan.ts';
import { updatePlanDraft } from '../service/update-plan-draft.ts';
import { upsertAddOn } from '../service/upsert-add-on.ts';

const M = CatalogService.method;

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw new InvalidArgumentError(`${field} is required`, [{ field, description: 'required' }]);
  return value;
}

const FORMATS = {
  [CatalogFormat.UNSPECIFIED]: 'auto',
  [CatalogFormat.YAML]: 'yaml',
  [CatalogFormat.JSON]: 'json',
} as const;

/** Builds the CatalogService implementation over a service context. */
export function catalogHandlers(context: ServiceContext): ServiceImpl<typeof CatalogService> {
  const read = () => context.db.fork();
  return {
    createFeature: (req) =>
      mutate(context, M.createFeature, req, async (s) => ({
        feature: await createFeature(s, required(req.feature, 'feature')),
      })),

    async getFeature(req) {
      const feature = await repo.features.find(read(), req.key);
      if (!feature) throw new NotFoundError('FEATURE_NOT_FOUND', `no feature "${req.key}"`);
      return { feature };
    },

    async listFeatures(req) {
      const { includeArchived } = req;
      const { items, nextPageToken } = await listPage(
        req,
        { includeArchived },
        (page) => repo.features.list(read(), { ...page, includeArchived }),
        (f) => f.key,
      );
      return { features: items, nextPageToken };
    },

    archiveFeature: (req) =>
      mutate(context, M.archiveFeature, req, async (s) => ({ feature: await archiveFeature(s, req.key) })),

    createMeter: (req) =>
      mutate(context, M.createMeter, req, async (s) => ({ meter: await createMeter(s, required(req.meter, 'meter')) })),

    async getMeter(req) {
      const meter = await repo.findMeter(read(), req.key);
      if (!meter) throw new NotFoundError('METER_NOT_FOUND', `no meter "${req.key}"`);
      return { meter };
    },

    async listMeters(req) {
      const { items, nextPageToken } = await listPage(
        req,
        {},
        (page) => repo.listMeters(read(), page),
        (m) => m.key,
      );
      return { meters: items, nextPageToken };
    },

    archiveMeter: (req) =>
      mutate(context, M.archiveMeter, req, async (s) => ({ meter: await archiveMeter(s, req.key) })),

    createPlan: (req) => mutate(context, M.createPlan, req, (s) => createPlan(s, req.key, required(req.spec, 'spec'))),

    updatePlanDraft: (req) =>
      mutate(context, M.updatePlanDraft, req, async (s) => ({
        draft: await updatePlanDraft(s, req.planKey, required(req.spec, 'spec'), req.version),
      })),

    publishPlan: (req) =>
      mutate(context, M.publishPlan, req, async (s) => ({ version: await publishPlan(s, req.planKey) })),

    archivePlan: (req) =>
      mutate(context, M.archivePlan, req, async (s) => ({ plan: await archivePlan(s, req.planKey) })),

    async getPlan(req) {
      const plan = await repo.findPlan(read(), req.planKey);
      if (!plan) throw new NotFoundError('PLAN_NOT_FOUND', `no plan "${req.planKey}"`);
      return { plan };
    },

    async listPlans(req) {
      const { includeArchived } = req;
      const { items, nextPageToken } = await listPage(
        req,
        { includeArchived },
        (page) => repo.listPlans(read(), { ...page, includeArchived }),
        (p) => p.key,
      );
      return { plans: items, nextPageToken };
    },

    async getPlanVersion(req) {
      const em = read();
      if (req.version < 0) {
        throw new InvalidArgumentError('version must not be negative', [
          { field: 'version', description: '0 or more' },
        ]);
      }
      const plan = await repo.findPlan(em, req.planKey);
      if (!plan) throw new NotFoundError('PLAN_NOT_FOUND', `no plan "${req.planKey}"`);
      const number = req.version || plan.latestVersion;
      const version = number ? await repo.findPlanVersion(em, req.planKey, number) : undefined;
      if (!version) throw new NotFoundError('PLAN_VERSION_NOT_FOUND', `plan "${req.planKey}" has no version ${number}`);
      return { version };
    },

    async listPlanVersions(req) {
      const { items, nextPageToken } = await listPage(
        req,
        { plan: req.planKey },
        (page) =>
          repo.listPlanVersions(read(), req.planKey, {
            size: page.size,
            before: page.after === undefined ? undefined : Number(page.after),
          }),
        (v) => String(v.version),
      );
      return { versions: items, nextPageToken };
    },

    upsertAddOn: (req) =>
      mutate(context, M.upsertAddOn, req, async (s) => ({
        addOn: await upsertAddOn(s, required(req.addOn, 'add_on')),
      })),

    async getAddOn(req) {
      const addOn = await repo.addOns.find(read(), req.key);
      if (!addOn) throw new NotFoundError('ADD_ON_NOT_FOUND', `no add-on "${req.key}"`);
      return { addOn };
    },

    async listAddOns(req) {
      const { includeArchived } = req;
      const { items, nextPageToken } = await listPage(
        req,
        { includeArchived },
        (page) => repo.addOns.list(read(), { ...page, includeArchived }),
        (a) => a.key,
      );
      return { addOns: items, nextPageToken };
    },

    archiveAddOn: (req) =>
      mutate(context, M.archiveAddOn, req, async (s) => ({ addOn: await archiveAddOn(s, req.key) })),

    applyCatalog: (req) => {
      const format = FORMATS[req.format];
      if (!format) {
        throw new InvalidArgumentError('unknown format', [
          { field: 'format', description: 'unspecified, yaml or json' },
        ]);
      }
      const { document, violations } = readCatalogDocument(req.document, format);
      if (violations.length > 0) throw new InvalidArgumentError('the catalog document is not valid', violations);
      return mutate(context, M.applyCatalog, req, async (s) => ({
        changes: await applyCatalog(s, document, { dryRun: req.dryRun, archiveMissing: req.archiveMissing }),
        dryRun: req.dryRun,
      }));
    },
  };
}
