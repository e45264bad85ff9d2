// How a subscription's terms change: after a move to another plan (quantities and contract prices carry over by
// charge key unless given), and after a change of seats and add-ons (named ones replaced, "0" detaches).
import type { PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { AddonQuantity, ChargeQuantity, PriceOverride } from '@billing/proto/billing/subscription/v1/resources_pb';
import type { SubscriptionRecord, Terms } from './subscription.ts';
import { termsOf } from './subscription.ts';
import { isZero } from './terms.ts';
import { quantityViolations } from './validate.ts';

/** The terms of a move to `version`: quantities and contract prices carry over by charge key unless given. */
export function changedTerms(
  record: SubscriptionRecord,
  version: PlanVersion,
  asked: { quantities: readonly ChargeQuantity[]; priceOverrides: readonly PriceOverride[] },
): Terms {
  const s = record.subscription;
  const keys = new Set((version.spec?.charges ?? []).map((c) => c.key));
  const kept = s.quantities.filter((q) => keys.has(q.chargeKey));
  // Carried quantities must still be valid seats of the new plan; otherwise the plan's defaults apply.
  const carried = quantityViolations(kept, version, 'quantities').length === 0;
  return {
    planKey: version.planKey,
    planVersion: version.version,
    quantities: asked.quantities.length > 0 ? [...asked.quantities] : carried ? kept : [],
    addons: s.addons,
    priceOverrides:
      asked.priceOverrides.length > 0
        ? [...asked.priceOverrides]
        : s.priceOverrides.filter((o) => keys.has(o.chargeKey)),
  };
}

/** The terms after a change of seats and add-ons: named seats replaced, add-ons attached, changed or detached. */
export function quantityTerms(
  record: SubscriptionRecord,
  asked: { quantities: readonly ChargeQuantity[]; addons: readonly AddonQuantity[] },
): Terms {
  const s = record.subscription;
  const quantities = [...s.quantities];
  for (const q of asked.quantities) {
    const i = quantities.findIndex((x) => x.chargeKey === q.chargeKey);
    if (i >= 0) quantities[i] = q;
    else quantities.push(q);
  }
  const addons = [...s.addons];
  for (const a of asked.addons) {
    const i = addons.findIndex((x) => x.addonKey === a.addonKey);
    if (i >= 0) addons[i] = a;
    else addons.push(a);
  }
  return { ...termsOf(s), quantities, addons: addons.filter((a) => !isZero(a.quantity)) };
}

/** Puts the subscription on `terms` of `version`. */
export function applyTerms(record: SubscriptionRecord, terms: Terms, version: PlanVersion): void {
  const s = record.subscription;
  s.planKey = terms.planKey;
  s.planVersion = terms.planVersion;
  s.interval = version.spec?.interval ?? s.interval;
  s.quantities = terms.quantities;
  s.addons = terms.addons;
  s.priceOverrides = terms.priceOverrides;
}
