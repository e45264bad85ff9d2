// What a subscription's terms mean against its plan version: which charges are billed in advance and at what
// unit amount, what requested terms may be (available, sellable, add-ons), and the proration items and period
// segments they give.
import { quote } from '@billing/kit/errors';
import { newUlid } from '@billing/kit/ids';
import { parseDecimal } from '@billing/money';
import {
  type AddOn,
  BillingTiming,
  type Charge,
  type PlanVersion,
  PriceModel,
  VersionStatus,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import { type PeriodSegment, PeriodSegmentSchema } from '@billing/proto/billing/subscription/events/v1/events_pb';
import {
  type AddonQuantity,
  type ChargeQuantity,
  type PriceOverride,
  ProrationBilling,
  type ProrationItem,
  ProrationItemSchema,
  ProrationReason,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { PeriodSchema } from '@billing/proto/billing/type/v1/types_pb';
import { create } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { stubFullPeriod } from './billing-calendar.ts';
import {
  addOnArchived,
  addOnNotForPlan,
  addOnNotFound,
  addOnNotRecurring,
  currencyNotOffered,
  planArchived,
  planVersionNotFound,
} from './errors.ts';
import { type ProratedLine, type Proration, prorateChange, type TimeRange } from './proration.ts';
import type { SubscriptionRecord, Terms } from './subscription.ts';

/** A period message from a time range. */
export function toPeriod(range: TimeRange) {
  return create(PeriodSchema, { startTime: timestampFromDate(range.start), endTime: timestampFromDate(range.end) });
}

/** A time range from a period message. */
export function fromPeriod(
  period:
    | { startTime?: Parameters<typeof timestampDate>[0]; endTime?: Parameters<typeof timestampDate>[0] }
    | undefined,
): TimeRange {
  if (!period?.startTime || !period.endTime) throw new Error('a period has a start and an end');
  return { start: timestampDate(period.startTime), end: timestampDate(period.endTime) };
}

/** A segment of `range` on `terms`. */
export function segmentOf(terms: Terms, range: TimeRange, trial: boolean): PeriodSegment {
  return create(PeriodSegmentSchema, {
    period: toPeriod(range),
    planKey: terms.planKey,
    planVersion: terms.planVersion,
    quantities: terms.quantities,
    addons: terms.addons,
    priceOverrides: terms.priceOverrides,
    trial,
  });
}

/**
 * The segments after a change to `terms` at `at`: the current segment ends at `at` and a new one runs to the
 * period's end. Two changes at the same instant leave one segment (with the later terms), never an empty one.
 */
export function splitSegments(segments: readonly PeriodSegment[], terms: Terms, at: Date, trial: boolean) {
  const last = segments[segments.length - 1];
  if (!last) throw new Error('a period has at least one segment');
  const range = fromPeriod(last.period);
  const kept =
    range.start.getTime() >= at.getTime()
      ? segments.slice(0, -1)
      : [
          ...segments.slice(0, -1),
          create(PeriodSegmentSchema, { ...last, period: toPeriod({ start: range.start, end: at }) }),
        ];
  return [...kept, segmentOf(terms, { start: at, end: range.end }, trial)];
}

const quantityOf = (quantities: readonly ChargeQuantity[], key: string) =>
  quantities.find((q) => q.chargeKey === key)?.quantity ?? '1';

/** Whether a charge is billed in advance for a known quantity, and so prorated. */
export function isProrated(charge: Charge): boolean {
  return (
    charge.timing === BillingTiming.IN_ADVANCE &&
    (charge.model === PriceModel.FLAT || charge.model === PriceModel.PER_SEAT)
  );
}

function unitAmount(charge: Charge, currency: string, overrides: readonly PriceOverride[]): string {
  const override = overrides.find((o) => o.chargeKey === charge.key);
  if (override && override.unitAmount !== '') return override.unitAmount;
  return charge.prices.find((p) => p.currencyCode === currency)?.unitAmount || '0';
}

/** The in-advance lines of `terms` on `version` (and the add-ons' charges), which proration works on. */
export function proratedLines(
  terms: Terms,
  version: PlanVersion,
  addonCharges: Readonly<Record<string, Charge[]>>,
  currency: string,
): ProratedLine[] {
  const lines: ProratedLine[] = [];
  const base = { planKey: terms.planKey, planVersion: terms.planVersion };
  for (const charge of version.spec?.charges ?? []) {
    if (!isProrated(charge)) continue;
    lines.push({
      ...base,
      chargeKey: charge.key,
      addonKey: '',
      unitAmount: unitAmount(charge, currency, terms.priceOverrides),
      quantity: charge.model === PriceModel.PER_SEAT ? quantityOf(terms.quantities, charge.key) : '1',
    });
  }
  for (const addon of terms.addons) {
    for (const charge of addonCharges[addon.addonKey] ?? []) {
      if (!isProrated(charge)) continue;
      lines.push({
        ...base,
        chargeKey: charge.key,
        addonKey: addon.addonKey,
        unitAmount: unitAmount(charge, currency, []),
        quantity: addon.quantity,
      });
    }
  }
  return lines;
}

/** Which invoice bills a proration: charges now; credits now for plan changes, otherwise on the next one. */
function billingOf(reason: ProrationReason, sign: 1 | -1): ProrationBilling {
  if (sign > 0 || reason === ProrationReason.PLAN_CHANGE) return ProrationBilling.INVOICE_NOW;
  return ProrationBilling.NEXT_INVOICE;
}

/** The period a change within the current period is prorated against: the calendar period of a first stub. */
export function prorationPeriod(record: SubscriptionRecord): TimeRange {
  const current = fromPeriod(record.subscription.currentPeriod);
  if (record.schedule && record.periodIndex === 0) return stubFullPeriod(record.schedule) ?? current;
  return current;
}

/** Turns prorations into proration items (with ids unless `preview`). */
export function toItems(
  prorations: readonly Proration[],
  context: { subscriptionId: string; currency: string; full: TimeRange; reason: ProrationReason; at: Date },
  preview = false,
): ProrationItem[] {
  return prorations.map((p) =>
    create(ProrationItemSchema, {
      id: preview ? '' : `pri_${newUlid()}`,
      subscriptionId: context.subscriptionId,
      planKey: p.line.planKey,
      planVersion: p.line.planVersion,
      chargeKey: p.line.chargeKey,
      addonKey: p.line.addonKey,
      period: toPeriod(p.slice),
      fullPeriod: toPeriod(context.full),
      quantity: p.line.quantity,
      unitAmount: p.line.unitAmount,
      amount: { currencyCode: context.currency, amount: p.amount },
      reason: context.reason,
      billing: billingOf(context.reason, p.sign),
      effectiveTime: timestampFromDate(context.at),
    }),
  );
}

/** The prorations of a change, as items. */
export function prorationItems(
  before: ProratedLine[],
  after: ProratedLine[],
  context: { subscriptionId: string; currency: string; full: TimeRange; reason: ProrationReason; at: Date },
  preview = false,
): ProrationItem[] {
  const mode = context.reason === ProrationReason.QUANTITY_CHANGE ? 'difference' : 'replace';
  return toItems(prorateChange(before, after, context.full, context.at, mode), context, preview);
}

// ---- what requested terms may be ----

/** Whether a whole-number quantity (already checked) is zero. */
export function isZero(quantity: string): boolean {
  return parseDecimal(quantity).isZero();
}

/** Checks that a plan version is published (or superseded) and its plan not archived. */
export function assertAvailable(version: PlanVersion): void {
  if (version.status === VersionStatus.DRAFT) throw planVersionNotFound(version.planKey, version.version);
  if (version.status === VersionStatus.ARCHIVED) throw planArchived(version.planKey);
}

/** Checks that a plan version can be subscribed to in `currency`. */
export function assertSellable(version: PlanVersion, currency: string): void {
  assertAvailable(version);
  if (!version.spec?.currencyCodes.includes(currency)) {
    throw currencyNotOffered(`version ${version.version} of ${quote(version.planKey)}`, currency);
  }
}

/** Checks that each add-on is recurring, sold for the plan and in the currency; returns their charges. */
export function addonChargesFor(
  addons: readonly AddonQuantity[],
  catalog: ReadonlyMap<string, AddOn>,
  planKey: string,
  currency: string,
): Record<string, Charge[]> {
  const out: Record<string, Charge[]> = {};
  for (const { addonKey } of addons) {
    const addon = catalog.get(addonKey);
    if (!addon) throw addOnNotFound(addonKey);
    if (addon.archived) throw addOnArchived(addonKey);
    if (addon.charges.length === 0) throw addOnNotRecurring(addonKey);
    if (addon.planKeys.length > 0 && !addon.planKeys.includes(planKey)) throw addOnNotForPlan(addonKey, planKey);
    if (!addon.currencyCodes.includes(currency)) throw currencyNotOffered(`add-on ${quote(addonKey)}`, currency);
    out[addonKey] = addon.charges;
  }
  return out;
}
