// The events the subscription service publishes (subjects per docs/events.md).

import * as E from '../../gen/billing/subscription/events/v1/events_pb.js';
import { defineEvent } from './define.ts';

/** A customer was created. */
export const customerCreated = defineEvent('billing.subscription.customer.created', E.CustomerCreatedSchema);
/** A customer's name, billing settings or metadata changed. */
export const customerUpdated = defineEvent('billing.subscription.customer.updated', E.CustomerUpdatedSchema);
/** A customer moved in its tree or changed who pays. */
export const customerTreeChanged = defineEvent(
  'billing.subscription.customer.tree_changed',
  E.CustomerTreeChangedSchema,
);
/** A subscription was created. */
export const subscriptionCreated = defineEvent(
  'billing.subscription.subscription.created',
  E.SubscriptionCreatedSchema,
);
/** A trial ends within three days. */
export const subscriptionTrialEnding = defineEvent(
  'billing.subscription.subscription.trial_ending',
  E.SubscriptionTrialEndingSchema,
);
/** A subscription became ACTIVE. */
export const subscriptionActivated = defineEvent(
  'billing.subscription.subscription.activated',
  E.SubscriptionActivatedSchema,
);
/** A subscription moved to another plan or version. */
export const subscriptionPlanChanged = defineEvent(
  'billing.subscription.subscription.plan_changed',
  E.SubscriptionPlanChangedSchema,
);
/** Seats or add-ons changed mid-period. */
export const subscriptionQuantityChanged = defineEvent(
  'billing.subscription.subscription.quantity_changed',
  E.SubscriptionQuantityChangedSchema,
);
/** A change was scheduled for the period end. */
export const subscriptionChangeScheduled = defineEvent(
  'billing.subscription.subscription.change_scheduled',
  E.SubscriptionChangeScheduledSchema,
);
/** A scheduled change was dropped. */
export const subscriptionScheduledChangeCanceled = defineEvent(
  'billing.subscription.subscription.scheduled_change_canceled',
  E.SubscriptionScheduledChangeCanceledSchema,
);
/** A cancellation at the period end was scheduled. */
export const subscriptionCancelScheduled = defineEvent(
  'billing.subscription.subscription.cancel_scheduled',
  E.SubscriptionCancelScheduledSchema,
);
/** A scheduled cancellation was undone. */
export const subscriptionResumed = defineEvent(
  'billing.subscription.subscription.resumed',
  E.SubscriptionResumedSchema,
);
/** A subscription was canceled with immediate effect. */
export const subscriptionCanceled = defineEvent(
  'billing.subscription.subscription.canceled',
  E.SubscriptionCanceledSchema,
);
/** A subscription ended. */
export const subscriptionEnded = defineEvent('billing.subscription.subscription.ended', E.SubscriptionEndedSchema);
/** A subscription is past due. */
export const subscriptionPastDue = defineEvent(
  'billing.subscription.subscription.past_due',
  E.SubscriptionPastDueSchema,
);
/** A billing period closed. */
export const subscriptionPeriodClosed = defineEvent(
  'billing.subscription.subscription.period_closed',
  E.SubscriptionPeriodClosedSchema,
);
/** A subscription entered a new period. */
export const subscriptionRenewed = defineEvent(
  'billing.subscription.subscription.renewed',
  E.SubscriptionRenewedSchema,
);
/** A test clock moved forward. */
export const testClockAdvanced = defineEvent('billing.subscription.test_clock.advanced', E.TestClockAdvancedSchema);
/** A test clock was deleted. */
export const testClockDeleted = defineEvent('billing.subscription.test_clock.deleted', E.TestClockDeletedSchema);
