// ApplyCatalog: make the catalog match a document, declaratively. The changes are computed first (that is
// the dry run's answer), every violation is reported at once, and only then are the changes made, in one
// transaction, through the same use cases as the single-object RPCs.

import { type FieldViolation, quote, refuseViolations } from '@billing/kit/errors';
import {
  type CatalogChange,
  CatalogChangeKind,
  CatalogChangeSchema,
} from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import {
  AddOnSchema,
  MeterSchema,
  PlanStatus,
  PlanVersionSpecSchema,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import { create, type DescMessage, equals, type MessageShape } from '@bufbuild/protobuf';
import { addOnRepository } from '../adapter/add-on-repository.ts';
import { allPlans } from '../adapter/plan-repository.ts';
import { findPlanVersion } from '../adapter/plan-version-repository.ts';
import type { CatalogDocument } from '../domain/catalog-document.ts';
import { catalogConflict } from '../domain/errors.ts';
import { type CatalogLookup, KEY_PATTERN } from '../domain/types.ts';
import {
  type ApplyCatalogInput,
  validateAddOn,
  validateFeature,
  validateMeter,
  validatePlanSpec,
} from '../domain/validate.ts';
import { archiveAddOn } from './archive-add-on.ts';
import { archiveFeature } from './archive-feature.ts';
import { archiveMeter } from './archive-meter.ts';
import { archivePlan } from './archive-plan.ts';
import { loadCatalogLookup } from './catalog-lookup.ts';
import type { WriteContext } from './context.ts';
import { createFeature } from './create-feature.ts';
import { createMeter } from './create-meter.ts';
import { createPlan } from './create-plan.ts';
import { publishPlan } from './publish-plan.ts';
import { reactivatePlan } from './reactivate-plan.ts';
import { updateFeature } from './update-feature.ts';
import { updatePlanDraft } from './update-plan-draft.ts';
import { upsertAddOn } from './upsert-add-on.ts';

// Compares two messages ignoring the server-owned fields (archived flag, times).
function sameContent<S extends DescMessage>(schema: S, a: MessageShape<S>, b: MessageShape<S>): boolean {
  const strip = (m: MessageShape<S>) => ({ ...m, archived: false, createTime: undefined, updateTime: undefined });
  return equals(schema, strip(a) as MessageShape<S>, strip(b) as MessageShape<S>);
}

function duplicates(out: FieldViolation[], section: string, keys: readonly string[]): void {
  const seen = new Set<string>();
  keys.forEach((key, i) => {
    if (seen.has(key)) out.push({ field: `document.${section}[${i}].key`, description: `duplicate key ${quote(key)}` });
    seen.add(key);
  });
}

const change = (kind: CatalogChangeKind, key: string, version = 0): CatalogChange =>
  create(CatalogChangeSchema, { kind, key, version });

/** Applies (or, in a dry run, plans) a catalog document; returns the changes in the order they are made. */
export async function applyCatalog(ctx: WriteContext, input: ApplyCatalogInput): Promise<CatalogChange[]> {
  const { document } = input;
  const current = await loadCatalogLookup(ctx.em);
  const plans = new Map((await allPlans(ctx.em)).map((p) => [p.key, p]));
  const addOns = new Map((await addOnRepository.all(ctx.em)).map((a) => [a.key, a]));
  const violations: FieldViolation[] = [];
  duplicates(
    violations,
    'meters',
    document.meters.map((m) => m.key),
  );
  duplicates(
    violations,
    'features',
    document.features.map((f) => f.key),
  );
  duplicates(
    violations,
    'plans',
    document.plans.map((p) => p.key),
  );
  duplicates(
    violations,
    'add_ons',
    document.addOns.map((a) => a.key),
  );

  // Validation sees the catalog as it will be: the document's meters and features over the current ones.
  const docMeters = new Map(document.meters.map((m) => [m.key, m]));
  const docFeatures = new Map(document.features.map((f) => [f.key, f]));
  const future: CatalogLookup = {
    meter: (key) => docMeters.get(key) ?? current.meter(key),
    feature: (key) => docFeatures.get(key) ?? current.feature(key),
  };

  const changes: CatalogChange[] = [];
  const conflicts: string[] = [];
  document.meters.forEach((meter, i) => {
    violations.push(...validateMeter(meter, `document.meters[${i}]`));
    const existing = current.meter(meter.key);
    if (!existing) changes.push(change(CatalogChangeKind.METER_CREATED, meter.key));
    else if (!sameContent(MeterSchema, existing, meter)) conflicts.push(`meter ${quote(meter.key)} cannot change`);
  });
  document.features.forEach((feature, i) => {
    const existing = current.feature(feature.key);
    if (!existing) {
      violations.push(...validateFeature(feature, future, `document.features[${i}]`));
      changes.push(change(CatalogChangeKind.FEATURE_CREATED, feature.key));
    } else if (existing.kind !== feature.kind || existing.meterKey !== feature.meterKey) {
      conflicts.push(`feature ${quote(feature.key)} cannot change kind or meter`);
    } else if (existing.archived || existing.name !== feature.name || existing.description !== feature.description) {
      changes.push(change(CatalogChangeKind.FEATURE_UPDATED, feature.key));
    }
  });
  for (const [i, { key, spec }] of document.plans.entries()) {
    if (!KEY_PATTERN.test(key)) {
      violations.push({ field: `document.plans[${i}].key`, description: 'must be lower snake case, 1-64 characters' });
    }
    violations.push(...validatePlanSpec(spec, future, `document.plans[${i}]`));
    const existing = plans.get(key);
    if (!existing) {
      changes.push(change(CatalogChangeKind.PLAN_ADDED, key, 1));
      continue;
    }
    if (existing.status === PlanStatus.ARCHIVED) changes.push(change(CatalogChangeKind.PLAN_REACTIVATED, key));
    const latest = existing.latestVersion ? await findPlanVersion(ctx.em, key, existing.latestVersion) : undefined;
    if (!latest?.spec || !equals(PlanVersionSpecSchema, latest.spec, spec)) {
      const version = existing.draftVersion || existing.latestVersion + 1;
      changes.push(change(CatalogChangeKind.PLAN_VERSION_PUBLISHED, key, version));
    }
  }
  document.addOns.forEach((addOn, i) => {
    violations.push(...validateAddOn(addOn, future, `document.add_ons[${i}]`));
    const existing = addOns.get(addOn.key);
    if (!existing || existing.archived || !sameContent(AddOnSchema, existing, addOn)) {
      changes.push(change(CatalogChangeKind.ADD_ON_UPSERTED, addOn.key));
    }
  });
  if (input.archiveMissing) {
    for (const plan of plans.values()) {
      if (plan.status === PlanStatus.ACTIVE && !document.plans.some((p) => p.key === plan.key)) {
        changes.push(change(CatalogChangeKind.PLAN_ARCHIVED, plan.key));
      }
    }
    for (const addOn of addOns.values()) {
      if (!addOn.archived && !document.addOns.some((a) => a.key === addOn.key)) {
        changes.push(change(CatalogChangeKind.ADD_ON_ARCHIVED, addOn.key));
      }
    }
    for (const feature of current.features) {
      if (!feature.archived && !docFeatures.has(feature.key)) {
        changes.push(change(CatalogChangeKind.FEATURE_ARCHIVED, feature.key));
      }
    }
    for (const meter of current.meters) {
      if (!meter.archived && !docMeters.has(meter.key)) {
        changes.push(change(CatalogChangeKind.METER_ARCHIVED, meter.key));
      }
    }
  }

  refuseViolations(violations, 'the catalog document is not valid');
  if (conflicts.length > 0) throw catalogConflict(conflicts);
  if (input.dryRun) return changes;

  for (const c of changes) await applyChange(ctx, c, document);
  return changes;
}

async function applyChange(ctx: WriteContext, c: CatalogChange, document: CatalogDocument): Promise<void> {
  const planSpec = () => {
    const plan = document.plans.find((p) => p.key === c.key);
    if (!plan) throw new Error(`plan ${c.key} vanished from the document`);
    return plan.spec;
  };
  switch (c.kind) {
    case CatalogChangeKind.METER_CREATED: {
      const meter = document.meters.find((m) => m.key === c.key);
      if (meter) await createMeter(ctx, meter);
      return;
    }
    case CatalogChangeKind.FEATURE_CREATED:
    case CatalogChangeKind.FEATURE_UPDATED: {
      const feature = document.features.find((f) => f.key === c.key);
      if (!feature) return;
      if (c.kind === CatalogChangeKind.FEATURE_CREATED) await createFeature(ctx, feature);
      else await updateFeature(ctx, feature);
      return;
    }
    case CatalogChangeKind.PLAN_ADDED:
      await createPlan(ctx, c.key, planSpec());
      await publishPlan(ctx, c.key);
      return;
    case CatalogChangeKind.PLAN_REACTIVATED:
      await reactivatePlan(ctx, c.key);
      return;
    case CatalogChangeKind.PLAN_VERSION_PUBLISHED:
      await updatePlanDraft(ctx, { planKey: c.key, spec: planSpec(), version: 0 });
      await publishPlan(ctx, c.key);
      return;
    case CatalogChangeKind.ADD_ON_UPSERTED: {
      const addOn = document.addOns.find((a) => a.key === c.key);
      if (addOn) await upsertAddOn(ctx, addOn);
      return;
    }
    case CatalogChangeKind.PLAN_ARCHIVED:
      await archivePlan(ctx, c.key);
      return;
    case CatalogChangeKind.ADD_ON_ARCHIVED:
      await archiveAddOn(ctx, c.key);
      return;
    case CatalogChangeKind.FEATURE_ARCHIVED:
      await archiveFeature(ctx, c.key);
      return;
    case CatalogChangeKind.METER_ARCHIVED:
      await archiveMeter(ctx, c.key);
      return;
    default:
      throw new Error(`unknown catalog change ${c.kind}`);
  }
}
