// Subscription use cases: create, change plan, change quantities, cancel and resume, scheduled changes,
// version migrations and previews (docs/subscriptions.md, docs/proration.md).
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@billing/kit/errors';
import { newUlid } from '@billing/kit/ids';
import { recordEvent } from '@billing/kit/outbox';
import { addLocalDays } from '@billing/kit/time-zone';
import type { AddOn, PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import {
  AnchorKind,
  BillingAnchorSchema,
  CancelMode,
  EndReason,
  type ProrationItem,
  ProrationReason,
  ScheduledChangeKind,
  ScheduledChangeSchema,
  SubscriptionSchema,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import type {
  ChangePlanRequest,
  ChangeQuantityRequest,
  CreateSubscriptionRequest,
  MigrateSubscriptionsRequest,
  PreviewChangeRequest,
} from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { ChangeTiming } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import {
  subscriptionCanceled,
  subscriptionCancelScheduled,
  subscriptionChangeScheduled,
  subscriptionCreated,
  subscriptionPlanChanged,
  subscriptionQuantityChanged,
  subscriptionResumed,
  subscriptionScheduledChangeCanceled,
} from '@billing/proto/events/subscription';
import { create } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import * as store from '../adapter/store.ts';
import { checkMetadata } from '../domain/customer.ts';
import {
  assertState,
  assertTransition,
  inTrial,
  isBilled,
  type SubscriptionRecord,
  type Terms,
  termsOf,
} from '../domain/subscription.ts';
import { begin, currentLines, endNow, prorationPeriod, requirePlanVersion } from './billing-clock.ts';
import { eventContext, type WriteContext } from './context.ts';
import { lockCurrency, requireCustomer } from './customers.ts';
import {
  addonChargesFor,
  addonViolations,
  assertAvailable,
  assertSellable,
  fromPeriod,
  overrideViolations,
  proratedLines,
  prorationItems,
  quantityViolations,
  splitSegments,
  throwIfAny,
} from './terms.ts';

const S = SubscriptionState;
const MAX_TRIAL_DAYS = 730;
/** How far in the past a start time may be (clock skew between caller and service). */
const START_TOLERANCE_MS = 60_000;

/** What the handler read from the catalog before the transaction. */
export interface CatalogData {
  /** The plan version asked for, if any. */
  version?: PlanVersion;
  /** The add-ons named in the request. */
  addOns: ReadonlyMap<string, AddOn>;
}

/** The subscription with this id, or NOT_FOUND SUBSCRIPTION_NOT_FOUND. */
export async function requireSubscription(ctx: Pick<WriteContext, 'em'>, id: string, lock = false) {
  const record = await store.findSubscription(ctx.em, id, lock);
  if (!record) throw new NotFoundError('SUBSCRIPTION_NOT_FOUND', `no subscription "${id}"`);
  return record;
}

function requireVersion(catalog: CatalogData): PlanVersion {
  if (!catalog.version) throw new Error('the handler reads the plan version first');
  return catalog.version;
}

/** Creates a subscription: PENDING for a future start, otherwise TRIALING or ACTIVE (billed at once). */
export async function createSubscription(ctx: WriteContext, req: CreateSubscriptionRequest, catalog: CatalogData) {
  const version = requireVersion(catalog);
  const violations = [
    ...quantityViolations(req.quantities, version, 'quantities'),
    ...addonViolations(req.addons, 'addons', false),
    ...overrideViolations(req.priceOverrides, version, 'price_overrides'),
  ];
  const anchorKind = req.anchor?.kind ?? AnchorKind.ANNIVERSARY;
  if (!(anchorKind in AnchorKind)) violations.push({ field: 'anchor.kind', description: 'unknown value' });
  const day = req.anchor?.dayOfMonth ?? 0;
  if (anchorKind === AnchorKind.DAY_OF_MONTH && (day < 1 || day > 31)) {
    violations.push({ field: 'anchor.day_of_month', description: 'a day of the month, 1-31' });
  }
  if (anchorKind !== AnchorKind.DAY_OF_MONTH && day !== 0) {
    violations.push({ field: 'anchor.day_of_month', description: 'only for ANCHOR_KIND_DAY_OF_MONTH' });
  }
  const trialDays = req.trialDays ?? version.spec?.trialDays ?? 0;
  if (trialDays < 0 || trialDays > MAX_TRIAL_DAYS) {
    violations.push({ field: 'trial_days', description: `0-${MAX_TRIAL_DAYS} days` });
  }
  checkMetadata(violations, 'metadata', req.metadata);
  throwIfAny(violations, 'the subscription is not valid');

  const customer = await requireCustomer(ctx, req.customerId, true);
  const currency = req.currencyCode || customer.billing?.currencyCode || '';
  if (currency === '') {
    throw new InvalidArgumentError('the customer has no currency yet', [
      { field: 'currency_code', description: 'required when the customer has no currency' },
    ]);
  }
  if (customer.billing?.currencyCode && customer.billing.currencyCode !== currency) {
    throw new FailedPreconditionError(
      'CURRENCY_MISMATCH',
      `the customer is billed in ${customer.billing.currencyCode}, not ${currency}`,
    );
  }
  assertSellable(version, currency);
  const addonCharges = addonChargesFor(req.addons, catalog.addOns, version.planKey, currency);
  await store.savePlanVersion(ctx.em, version);

  const now = await store.clockTime(ctx.em, customer.testClockId, ctx.now);
  // Calendar boundaries are whole seconds (local wall times), so starts are too.
  const start = new Date(Math.floor((req.startTime ? timestampDate(req.startTime) : now).getTime() / 1000) * 1000);
  if (start.getTime() < now.getTime() - START_TOLERANCE_MS) {
    throw new InvalidArgumentError('the start is in the past', [
      { field: 'start_time', description: 'must not be in the past' },
    ]);
  }
  const zone = customer.billing?.timeZone || 'UTC';
  const subscription = create(SubscriptionSchema, {
    id: `sub_${newUlid()}`,
    customerId: customer.id,
    customerExternalId: customer.externalId,
    payerId: customer.payerId,
    planKey: version.planKey,
    planVersion: version.version,
    interval: version.spec?.interval,
    state: S.PENDING,
    currencyCode: currency,
    quantities: req.quantities,
    addons: req.addons,
    priceOverrides: req.priceOverrides,
    anchor: create(BillingAnchorSchema, { kind: anchorKind, dayOfMonth: day }),
    startTime: timestampFromDate(start),
    trialEndTime: trialDays > 0 ? timestampFromDate(addLocalDays(start, zone, trialDays)) : undefined,
    periodNumber: 0,
    metadata: req.metadata,
    createTime: timestampFromDate(now),
    updateTime: timestampFromDate(now),
  });
  const record: SubscriptionRecord = {
    subscription,
    testClockId: customer.testClockId,
    schedule: undefined,
    periodIndex: 0,
    segments: [],
    stateBeforeCancel: S.UNSPECIFIED,
    trialEndingNotified: false,
    addonCharges,
  };
  // Insert first: the first period's proration items reference the subscription.
  await store.insertSubscription(ctx.em, record);
  const started = start.getTime() <= now.getTime() ? await begin(ctx, record, customer) : undefined;
  await store.saveSubscription(ctx.em, record);
  await lockCurrency(ctx, customer, currency, now);
  await recordEvent(
    ctx.em,
    subscriptionCreated,
    {
      subscription,
      billTo: customer.billTo,
      firstBilledSegment: started?.segment,
      prorationItems: started?.items ?? [],
    },
    eventContext(ctx, subscription.id, now),
  );
  return { subscription, prorationItems: started?.items ?? [] };
}

/** The terms of a plan change: quantities and contract prices carry over by charge key unless given. */
function changedTerms(
  record: SubscriptionRecord,
  version: PlanVersion,
  req: Pick<ChangePlanRequest, 'quantities' | 'priceOverrides'>,
): Terms {
  const s = record.subscription;
  const keys = new Set((version.spec?.charges ?? []).map((c) => c.key));
  const carried =
    quantityViolations(
      s.quantities.filter((q) => keys.has(q.chargeKey)),
      version,
      'quantities',
    ).length === 0;
  return {
    planKey: version.planKey,
    planVersion: version.version,
    quantities:
      req.quantities.length > 0 ? req.quantities : carried ? s.quantities.filter((q) => keys.has(q.chargeKey)) : [],
    addons: s.addons,
    priceOverrides:
      req.priceOverrides.length > 0 ? req.priceOverrides : s.priceOverrides.filter((o) => keys.has(o.chargeKey)),
  };
}

function applyTerms(record: SubscriptionRecord, terms: Terms, version: PlanVersion) {
  const s = record.subscription;
  s.planKey = terms.planKey;
  s.planVersion = terms.planVersion;
  s.interval = version.spec?.interval ?? s.interval;
  s.quantities = terms.quantities;
  s.addons = terms.addons;
  s.priceOverrides = terms.priceOverrides;
}

/** The items of an immediate change of terms at `at` (none outside billed states). */
async function changeItems(
  ctx: WriteContext,
  record: SubscriptionRecord,
  after: { terms: Terms; version: PlanVersion; addonCharges: SubscriptionRecord['addonCharges'] },
  at: Date,
  reason: ProrationReason,
  preview = false,
): Promise<ProrationItem[]> {
  const s = record.subscription;
  if (!isBilled(record)) return [];
  const before = await currentLines(ctx, record);
  const next = proratedLines(after.terms, after.version, after.addonCharges, s.currencyCode);
  return prorationItems(
    before,
    next,
    { subscriptionId: s.id, currency: s.currencyCode, full: prorationPeriod(record), reason, at },
    preview,
  );
}

/** Records an immediate change of terms at `at`: segments, terms, items. */
async function commitChange(
  ctx: WriteContext,
  record: SubscriptionRecord,
  terms: Terms,
  version: PlanVersion,
  at: Date,
  items: readonly ProrationItem[],
) {
  const s = record.subscription;
  if (s.state !== S.PENDING) {
    record.segments = splitSegments(record.segments, terms, at, inTrial(record));
  }
  applyTerms(record, terms, version);
  s.updateTime = timestampFromDate(at);
  await store.saveSubscription(ctx.em, record);
  await store.insertProrationItems(ctx.em, s.periodNumber, items);
}

/** Moves a subscription to another plan or version, now with proration, or at the period end. */
export async function changePlan(ctx: WriteContext, req: ChangePlanRequest, catalog: CatalogData) {
  const version = requireVersion(catalog);
  if (req.timing !== ChangeTiming.IMMEDIATELY && req.timing !== ChangeTiming.PERIOD_END) {
    throw new InvalidArgumentError('timing is required', [
      { field: 'timing', description: 'IMMEDIATELY or PERIOD_END' },
    ]);
  }
  throwIfAny(
    [
      ...quantityViolations(req.quantities, version, 'quantities'),
      ...overrideViolations(req.priceOverrides, version, 'price_overrides'),
    ],
    'the change is not valid',
  );
  const record = await requireSubscription(ctx, req.subscriptionId, true);
  const s = record.subscription;
  assertState(s, [S.PENDING, S.TRIALING, S.ACTIVE, S.PAST_DUE], 'change the plan of');
  assertSellable(version, s.currencyCode);
  await store.savePlanVersion(ctx.em, version);
  const terms = changedTerms(record, version, req);
  const now = await store.clockTime(ctx.em, record.testClockId, ctx.now);

  if (req.timing === ChangeTiming.PERIOD_END) {
    if (s.state === S.PENDING) {
      throw new FailedPreconditionError(
        'INVALID_TRANSITION',
        'a subscription that has not started changes immediately',
      );
    }
    s.scheduledChange = create(ScheduledChangeSchema, {
      kind: ScheduledChangeKind.PLAN_CHANGE,
      applyTime: s.currentPeriod?.endTime,
      planKey: terms.planKey,
      planVersion: terms.planVersion,
      quantities: req.quantities,
      priceOverrides: req.priceOverrides,
    });
    s.updateTime = timestampFromDate(now);
    await store.saveSubscription(ctx.em, record);
    await recordEvent(ctx.em, subscriptionChangeScheduled, { subscription: s }, eventContext(ctx, s.id, now));
    return { subscription: s, prorationItems: [] };
  }

  const current = await requirePlanVersion(ctx, s.planKey, s.planVersion);
  if (isBilled(record) && current.spec?.interval !== version.spec?.interval) {
    throw new FailedPreconditionError(
      'INTERVAL_CHANGE_AT_PERIOD_END',
      'a change to another billing interval takes effect at the period end (timing PERIOD_END)',
    );
  }
  const previous = { planKey: s.planKey, planVersion: s.planVersion, quantities: s.quantities };
  const items = await changeItems(
    ctx,
    record,
    { terms, version, addonCharges: record.addonCharges },
    now,
    ProrationReason.PLAN_CHANGE,
  );
  s.scheduledChange = undefined;
  await commitChange(ctx, record, terms, version, now, items);
  await recordEvent(
    ctx.em,
    subscriptionPlanChanged,
    {
      subscription: s,
      previousPlanKey: previous.planKey,
      previousPlanVersion: previous.planVersion,
      previousQuantities: previous.quantities,
      immediate: true,
      prorationItems: items,
    },
    eventContext(ctx, s.id, now),
  );
  return { subscription: s, prorationItems: items };
}

/** The terms after a quantity change: named seats replaced, add-ons attached, changed or detached ("0"). */
function quantityTerms(record: SubscriptionRecord, req: Pick<ChangeQuantityRequest, 'quantities' | 'addons'>): Terms {
  const s = record.subscription;
  const quantities = [...s.quantities];
  for (const q of req.quantities) {
    const i = quantities.findIndex((x) => x.chargeKey === q.chargeKey);
    if (i >= 0) quantities[i] = q;
    else quantities.push(q);
  }
  const addons = [...s.addons];
  for (const a of req.addons) {
    const i = addons.findIndex((x) => x.addonKey === a.addonKey);
    if (i >= 0) addons[i] = a;
    else addons.push(a);
  }
  return { ...termsOf(s), quantities, addons: addons.filter((a) => Number(a.quantity) > 0) };
}

async function validateQuantityChange(
  ctx: WriteContext,
  record: SubscriptionRecord,
  req: Pick<ChangeQuantityRequest, 'quantities' | 'addons'>,
  catalog: CatalogData,
) {
  const s = record.subscription;
  const version = await requirePlanVersion(ctx, s.planKey, s.planVersion);
  throwIfAny(
    [...quantityViolations(req.quantities, version, 'quantities'), ...addonViolations(req.addons, 'addons', true)],
    'the change is not valid',
  );
  const attached = req.addons.filter((a) => Number(a.quantity) > 0 && !(a.addonKey in record.addonCharges));
  const addonCharges = {
    ...record.addonCharges,
    ...addonChargesFor(attached, catalog.addOns, s.planKey, s.currencyCode),
  };
  const terms = quantityTerms(record, req);
  for (const key of Object.keys(addonCharges))
    if (!terms.addons.some((a) => a.addonKey === key)) delete addonCharges[key];
  return { version, terms, addonCharges };
}

/** Changes seats and add-ons now: additions charged at once, removals credited on the next invoice. */
export async function changeQuantity(ctx: WriteContext, req: ChangeQuantityRequest, catalog: CatalogData) {
  const record = await requireSubscription(ctx, req.subscriptionId, true);
  const s = record.subscription;
  assertState(s, [S.PENDING, S.TRIALING, S.ACTIVE, S.PAST_DUE, S.CANCELED], 'change the quantities of');
  const { version, terms, addonCharges } = await validateQuantityChange(ctx, record, req, catalog);
  const now = await store.clockTime(ctx.em, record.testClockId, ctx.now);
  const previous = { quantities: s.quantities, addons: s.addons };
  const items = await changeItems(ctx, record, { terms, version, addonCharges }, now, ProrationReason.QUANTITY_CHANGE);
  record.addonCharges = addonCharges;
  await commitChange(ctx, record, terms, version, now, items);
  await recordEvent(
    ctx.em,
    subscriptionQuantityChanged,
    {
      subscription: s,
      previousQuantities: previous.quantities,
      previousAddons: previous.addons,
      prorationItems: items,
    },
    eventContext(ctx, s.id, now),
  );
  return { subscription: s, prorationItems: items };
}

/** Cancels at the period end (resumable), or now with or without a prorated credit. */
export async function cancelSubscription(ctx: WriteContext, id: string, mode: CancelMode, reason: string) {
  if (
    ![CancelMode.PERIOD_END, CancelMode.IMMEDIATELY_WITH_CREDIT, CancelMode.IMMEDIATELY_WITHOUT_CREDIT].includes(mode)
  ) {
    throw new InvalidArgumentError('mode is required', [
      { field: 'mode', description: 'a CancelMode other than UNSPECIFIED' },
    ]);
  }
  if (reason.length > 500) {
    throw new InvalidArgumentError('reason is too long', [{ field: 'reason', description: 'at most 500 characters' }]);
  }
  const record = await requireSubscription(ctx, id, true);
  const s = record.subscription;
  const now = await store.clockTime(ctx.em, record.testClockId, ctx.now);
  if (mode === CancelMode.PERIOD_END && s.state !== S.PENDING) {
    assertTransition(s.state, S.CANCELED, 'cancel');
    if (s.state === S.CANCELED) return { subscription: s, prorationItems: [] };
    record.stateBeforeCancel = s.state;
    s.state = S.CANCELED;
    s.cancelTime = s.currentPeriod?.endTime;
    s.scheduledChange = undefined;
    s.updateTime = timestampFromDate(now);
    await store.saveSubscription(ctx.em, record);
    await recordEvent(ctx.em, subscriptionCancelScheduled, { subscription: s, reason }, eventContext(ctx, s.id, now));
    return { subscription: s, prorationItems: [] };
  }
  assertTransition(s.state, S.ENDED, 'cancel');
  const items =
    mode === CancelMode.IMMEDIATELY_WITH_CREDIT && isBilled(record)
      ? prorationItems(await currentLines(ctx, record), [], {
          subscriptionId: s.id,
          currency: s.currencyCode,
          full: prorationPeriod(record),
          reason: ProrationReason.CANCELLATION,
          at: now,
        })
      : [];
  await store.insertProrationItems(ctx.em, s.periodNumber, items);
  const canceledMode = mode === CancelMode.PERIOD_END ? CancelMode.IMMEDIATELY_WITHOUT_CREDIT : mode;
  const ended = create(SubscriptionSchema, {
    ...s,
    state: S.ENDED,
    endTime: timestampFromDate(now),
    endReason: EndReason.CANCELED_IMMEDIATELY,
  });
  await recordEvent(
    ctx.em,
    subscriptionCanceled,
    { subscription: ended, mode: canceledMode, prorationItems: items, reason },
    eventContext(ctx, s.id, now),
  );
  await endNow(ctx, record, now, EndReason.CANCELED_IMMEDIATELY);
  return { subscription: record.subscription, prorationItems: items };
}

/** Undoes a cancellation scheduled for the period end. */
export async function resumeSubscription(ctx: WriteContext, id: string) {
  const record = await requireSubscription(ctx, id, true);
  const s = record.subscription;
  assertState(s, [S.CANCELED], 'resume');
  const now = await store.clockTime(ctx.em, record.testClockId, ctx.now);
  if (s.cancelTime && timestampDate(s.cancelTime).getTime() <= now.getTime()) {
    throw new FailedPreconditionError(
      'INVALID_TRANSITION',
      'the cancellation has taken effect; it can no longer be undone',
    );
  }
  s.state = record.stateBeforeCancel === S.UNSPECIFIED ? S.ACTIVE : record.stateBeforeCancel;
  s.cancelTime = undefined;
  s.updateTime = timestampFromDate(now);
  await store.saveSubscription(ctx.em, record);
  await recordEvent(ctx.em, subscriptionResumed, { subscription: s }, eventContext(ctx, s.id, now));
  return s;
}

/** Drops the change scheduled for the period end. */
export async function cancelScheduledChange(ctx: WriteContext, id: string) {
  const record = await requireSubscription(ctx, id, true);
  const s = record.subscription;
  const change = s.scheduledChange;
  if (!change) throw new FailedPreconditionError('NO_SCHEDULED_CHANGE', 'the subscription has no scheduled change');
  const now = await store.clockTime(ctx.em, record.testClockId, ctx.now);
  s.scheduledChange = undefined;
  s.updateTime = timestampFromDate(now);
  await store.saveSubscription(ctx.em, record);
  await recordEvent(
    ctx.em,
    subscriptionScheduledChangeCanceled,
    { subscription: s, canceledChange: change },
    eventContext(ctx, s.id, now),
  );
  return s;
}

/** Schedules every live subscription on one version to move to another at its next renewal. */
export async function migrateSubscriptions(ctx: WriteContext, req: MigrateSubscriptionsRequest, catalog: CatalogData) {
  const version = requireVersion(catalog);
  if (req.fromVersion < 1) {
    throw new InvalidArgumentError('from_version is required', [
      { field: 'from_version', description: 'a version, 1 or more' },
    ]);
  }
  if (version.version === req.fromVersion) {
    throw new InvalidArgumentError('the versions are the same', [
      { field: 'to_version', description: 'must differ from from_version' },
    ]);
  }
  assertAvailable(version);
  const records = await store.liveSubscriptionsOn(ctx.em, req.planKey, req.fromVersion);
  if (!req.dryRun) await store.savePlanVersion(ctx.em, version);
  const moved: SubscriptionRecord[] = [];
  let skipped = 0;
  for (const record of records) {
    const s = record.subscription;
    const sellable = version.spec?.currencyCodes.includes(s.currencyCode) ?? false;
    if (s.scheduledChange || s.state === S.CANCELED || !sellable) {
      skipped += 1;
      continue;
    }
    moved.push(record);
    if (req.dryRun) continue;
    const now = await store.clockTime(ctx.em, record.testClockId, ctx.now);
    s.scheduledChange = create(ScheduledChangeSchema, {
      kind: ScheduledChangeKind.MIGRATION,
      applyTime: s.state === S.PENDING ? s.startTime : s.currentPeriod?.endTime,
      planKey: req.planKey,
      planVersion: version.version,
    });
    s.updateTime = timestampFromDate(now);
    await store.saveSubscription(ctx.em, record);
    await recordEvent(ctx.em, subscriptionChangeScheduled, { subscription: s }, eventContext(ctx, s.id, now));
  }
  return {
    migratedCount: moved.length,
    skippedCount: skipped,
    subscriptionIds: moved.slice(0, 500).map((r) => r.subscription.id),
    toVersion: version.version,
    dryRun: req.dryRun,
  };
}

/** The proration items an immediate change would create, without making it. */
export async function previewChange(ctx: WriteContext, req: PreviewChangeRequest, catalog: CatalogData) {
  const record = await requireSubscription(ctx, req.subscriptionId);
  const s = record.subscription;
  const at = req.effectiveTime
    ? timestampDate(req.effectiveTime)
    : await store.clockTime(ctx.em, record.testClockId, ctx.now);
  if (s.currentPeriod) {
    const period = fromPeriod(s.currentPeriod);
    if (at.getTime() < period.start.getTime() || at.getTime() > period.end.getTime()) {
      throw new InvalidArgumentError('the effective time is outside the current period', [
        { field: 'effective_time', description: 'must fall within the current period' },
      ]);
    }
  }
  if (req.planKey !== '' || req.planVersion !== 0) {
    const version = requireVersion(catalog);
    throwIfAny(quantityViolations(req.quantities, version, 'quantities'), 'the change is not valid');
    assertSellable(version, s.currencyCode);
    const terms = changedTerms(record, version, { quantities: req.quantities, priceOverrides: [] });
    return changeItems(
      ctx,
      record,
      { terms, version, addonCharges: record.addonCharges },
      at,
      ProrationReason.PLAN_CHANGE,
      true,
    );
  }
  const { version, terms, addonCharges } = await validateQuantityChange(ctx, record, req, catalog);
  return changeItems(ctx, record, { terms, version, addonCharges }, at, ProrationReason.QUANTITY_CHANGE, true);
}
