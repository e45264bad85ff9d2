// What an immediate change of terms within a period costs and how it is kept: the proration items between the
// current terms and the new ones, and the change itself (segments, terms, items). Shared by the plan and
// quantity changes, their previews, and immediate cancellations.

import type { Em } from '@billing/kit/db';
import { refuseViolations } from '@billing/kit/errors';
import type { AddOn, PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import {
  type AddonQuantity,
  type ChargeQuantity,
  type ProrationItem,
  type ProrationReason,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { insertProrationItems } from '../adapter/proration-items-repository.ts';
import { saveSubscription } from '../adapter/subscriptions-repository.ts';
import type { ProratedLine } from '../domain/proration.ts';
import { inTrial, isBilled, type SubscriptionRecord, type Terms, termsOf } from '../domain/subscription.ts';
import { applyTerms, quantityTerms } from '../domain/term-changes.ts';
import {
  addonChargesFor,
  isZero,
  proratedLines,
  prorationItems,
  prorationPeriod,
  splitSegments,
} from '../domain/terms.ts';
import { quantityViolations, requireCharges } from '../domain/validate.ts';
import type { WriteContext } from './context.ts';
import { requirePlanVersion } from './lookups.ts';

/** The in-advance lines of the subscription's current terms. */
export async function currentLines(em: Em, record: SubscriptionRecord): Promise<ProratedLine[]> {
  const s = record.subscription;
  const version = await requirePlanVersion(em, s.planKey, s.planVersion);
  return proratedLines(termsOf(s), version, record.addonCharges, s.currencyCode);
}

/** New terms, on their plan version, with the recurring charges of the add-ons they have. */
export interface NewTerms {
  /** The terms. */
  terms: Terms;
  /** Their plan version. */
  version: PlanVersion;
  /** The charges of each add-on of the terms, as sold. */
  addonCharges: SubscriptionRecord['addonCharges'];
}

/** The proration items of an immediate change to `after` at `at` (none outside billed states; no ids if `preview`). */
export async function changeItems(
  em: Em,
  record: SubscriptionRecord,
  after: NewTerms,
  at: Date,
  reason: ProrationReason,
  preview = false,
): Promise<ProrationItem[]> {
  const s = record.subscription;
  if (!isBilled(record)) return [];
  const before = await currentLines(em, record);
  const next = proratedLines(after.terms, after.version, after.addonCharges, s.currencyCode);
  return prorationItems(
    before,
    next,
    { subscriptionId: s.id, currency: s.currencyCode, full: prorationPeriod(record), reason, at },
    preview,
  );
}

/** Keeps an immediate change of terms at `at`: the period's segments, the terms, the items. */
export async function commitChange(
  ctx: WriteContext,
  record: SubscriptionRecord,
  after: NewTerms,
  at: Date,
  items: readonly ProrationItem[],
): Promise<void> {
  const s = record.subscription;
  if (s.state !== SubscriptionState.PENDING) {
    record.segments = splitSegments(record.segments, after.terms, at, inTrial(record));
  }
  applyTerms(record, after.terms, after.version);
  record.addonCharges = after.addonCharges;
  s.updateTime = timestampFromDate(at);
  await saveSubscription(ctx.em, record);
  await insertProrationItems(ctx.em, s.periodNumber, items);
}

/**
 * The terms after a change of seats and add-ons, checked against the subscription's plan version: attached add-ons
 * bring their charges (as the catalog sells them now), detached ones take theirs away.
 */
export async function quantityChange(
  em: Em,
  record: SubscriptionRecord,
  asked: { quantities: readonly ChargeQuantity[]; addons: readonly AddonQuantity[] },
  addOns: ReadonlyMap<string, AddOn>,
): Promise<NewTerms> {
  const s = record.subscription;
  const version = await requirePlanVersion(em, s.planKey, s.planVersion);
  requireCharges(version, 'quantities', asked.quantities);
  refuseViolations(quantityViolations(asked.quantities, version, 'quantities'), 'the change is not valid');
  const attached = asked.addons.filter((a) => !isZero(a.quantity) && !(a.addonKey in record.addonCharges));
  const addonCharges = {
    ...record.addonCharges,
    ...addonChargesFor(attached, addOns, s.planKey, s.currencyCode),
  };
  const terms = quantityTerms(record, asked);
  for (const key of Object.keys(addonCharges)) {
    if (!terms.addons.some((a) => a.addonKey === key)) delete addonCharges[key];
  }
  return { terms, version, addonCharges };
}
