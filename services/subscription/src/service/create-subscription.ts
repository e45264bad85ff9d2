import { refuseViolations } from '@billing/kit/errors';
import { newUlid } from '@billing/kit/ids';
import { recordEvent } from '@billing/kit/outbox';
import { addLocalDays } from '@billing/kit/time-zone';
import {
  BillingAnchorSchema,
  BillingSettingsSchema,
  type Customer,
  CustomerSchema,
  SubscriptionSchema,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { customerUpdated, subscriptionCreated } from '@billing/proto/events/subscription';
import { clone, create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { saveCustomer } from '../adapter/customers-repository.ts';
import { savePlanVersion } from '../adapter/plan-versions-repository.ts';
import { insertProrationItems } from '../adapter/proration-items-repository.ts';
import { insertSubscription, saveSubscription } from '../adapter/subscriptions-repository.ts';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { startSubscription } from '../domain/billing-step.ts';
import { currencyMismatch, invalidArgument } from '../domain/errors.ts';
import type { SubscriptionChange, SubscriptionRecord } from '../domain/subscription.ts';
import { addonChargesFor, assertSellable } from '../domain/terms.ts';
import {
  type CreateSubscriptionInput,
  overrideViolations,
  quantityViolations,
  requireCharges,
} from '../domain/validate.ts';
import { eventContext, type WriteContext } from './context.ts';
import { requireCustomer } from './lookups.ts';
import type { PlanTerms } from './plan-catalog.ts';

/** How far in the past a start time may be (clock skew between caller and service). */
const START_TOLERANCE_MS = 60_000;

/**
 * Creates a subscription on the plan version and add-ons read from the catalog: PENDING for a future start,
 * otherwise TRIALING or ACTIVE (billed at once). The first subscription locks the customer's currency.
 */
export async function createSubscription(
  ctx: WriteContext,
  input: CreateSubscriptionInput,
  plan: PlanTerms,
): Promise<SubscriptionChange> {
  const { version } = plan;
  requireCharges(version, 'quantities', input.quantities);
  requireCharges(version, 'price_overrides', input.priceOverrides);
  refuseViolations(
    [
      ...quantityViolations(input.quantities, version, 'quantities'),
      ...overrideViolations(input.priceOverrides, version, 'price_overrides'),
    ],
    'the subscription is not valid',
  );
  const customer = await requireCustomer(ctx.em, input.customerId, true);
  const currency = input.currencyCode || customer.billing?.currencyCode || '';
  if (currency === '') {
    throw invalidArgument('the customer has no currency yet', [
      { field: 'currency_code', description: 'required when the customer has no currency' },
    ]);
  }
  if (customer.billing?.currencyCode && customer.billing.currencyCode !== currency) {
    throw currencyMismatch(customer.billing.currencyCode, currency);
  }
  assertSellable(version, currency);
  const addonCharges = addonChargesFor(input.addons, plan.addOns, version.planKey, currency);
  await savePlanVersion(ctx.em, version);

  const now = await clockTime(ctx.em, customer.testClockId, ctx.now);
  // Calendar boundaries are whole seconds (local wall times), so starts are too.
  const start = new Date(Math.floor((input.startTime ?? now).getTime() / 1000) * 1000);
  if (start.getTime() < now.getTime() - START_TOLERANCE_MS) {
    throw invalidArgument('the start is in the past', [
      { field: 'start_time', description: 'must not be in the past' },
    ]);
  }
  const trialDays = input.trialDays ?? version.spec?.trialDays ?? 0;
  const zone = customer.billing?.timeZone || 'UTC';
  const subscription = create(SubscriptionSchema, {
    id: `sub_${newUlid()}`,
    customerId: customer.id,
    customerExternalId: customer.externalId,
    payerId: customer.payerId,
    planKey: version.planKey,
    planVersion: version.version,
    interval: version.spec?.interval,
    state: SubscriptionState.PENDING,
    currencyCode: currency,
    quantities: input.quantities,
    addons: input.addons,
    priceOverrides: input.priceOverrides,
    anchor: create(BillingAnchorSchema, input.anchor),
    startTime: timestampFromDate(start),
    trialEndTime: trialDays > 0 ? timestampFromDate(addLocalDays(start, zone, trialDays)) : undefined,
    periodNumber: 0,
    metadata: input.metadata,
    createTime: timestampFromDate(now),
    updateTime: timestampFromDate(now),
  });
  const pending: SubscriptionRecord = {
    subscription,
    testClockId: customer.testClockId,
    schedule: undefined,
    periodIndex: 0,
    segments: [],
    stateBeforeCancel: SubscriptionState.UNSPECIFIED,
    trialEndingNotified: false,
    addonCharges,
  };
  // Insert first: the first period's proration items reference the subscription.
  await insertSubscription(ctx.em, pending);
  const started = start.getTime() <= now.getTime() ? startSubscription(pending, version, customer) : undefined;
  const record = started?.record ?? pending;
  const items = started?.items ?? [];
  await insertProrationItems(ctx.em, record.subscription.periodNumber, items);
  await saveSubscription(ctx.em, record);
  await lockCurrency(ctx, customer, currency, now);
  await recordEvent(
    ctx.em,
    subscriptionCreated,
    {
      subscription: record.subscription,
      billTo: customer.billTo,
      firstBilledSegment: started?.segment,
      prorationItems: items,
    },
    eventContext(ctx, subscription.id, now),
  );
  return { record, prorationItems: items };
}

/** Locks the currency of a customer at its first subscription, setting it if it had none. */
async function lockCurrency(ctx: WriteContext, customer: Customer, currencyCode: string, now: Date) {
  if (customer.currencyLocked && customer.billing?.currencyCode === currencyCode) return;
  const next = clone(CustomerSchema, customer);
  next.billing = clone(BillingSettingsSchema, customer.billing ?? create(BillingSettingsSchema));
  const changed = next.billing.currencyCode !== currencyCode ? ['billing.currency_code'] : [];
  next.billing.currencyCode = currencyCode;
  next.currencyLocked = true;
  next.updateTime = timestampFromDate(now);
  await saveCustomer(ctx.em, next);
  if (changed.length > 0) {
    await recordEvent(
      ctx.em,
      customerUpdated,
      { customer: next, changedFields: changed },
      eventContext(ctx, next.id, now),
    );
  }
}
