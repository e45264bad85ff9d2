// The errors of the subscription service: every reason it answers with (google.rpc.ErrorInfo, one spelling per
// meaning across services) and one constructor per error, which is all the rest of the service calls. A message
// is public and quotes a caller's value with `quote()`; what only operators need goes in `detail`.
import {
  AlreadyExistsError,
  FailedPreconditionError,
  type FieldViolation,
  InvalidArgumentError,
  NotFoundError,
  quote,
  UnavailableError,
} from '@billing/kit/errors';

/** The reasons of the subscription service's errors. */
export const Reason = {
  CUSTOMER_NOT_FOUND: 'CUSTOMER_NOT_FOUND',
  EXTERNAL_ID_TAKEN: 'EXTERNAL_ID_TAKEN',
  CURRENCY_LOCKED: 'CURRENCY_LOCKED',
  TREE_CYCLE: 'TREE_CYCLE',
  TREE_TOO_DEEP: 'TREE_TOO_DEEP',
  TEST_CLOCK_MISMATCH: 'TEST_CLOCK_MISMATCH',
  SUBSCRIPTION_NOT_FOUND: 'SUBSCRIPTION_NOT_FOUND',
  INVALID_TRANSITION: 'INVALID_TRANSITION',
  CURRENCY_MISMATCH: 'CURRENCY_MISMATCH',
  CURRENCY_NOT_OFFERED: 'CURRENCY_NOT_OFFERED',
  INTERVAL_CHANGE_AT_PERIOD_END: 'INTERVAL_CHANGE_AT_PERIOD_END',
  NO_SCHEDULED_CHANGE: 'NO_SCHEDULED_CHANGE',
  PLAN_NOT_FOUND: 'PLAN_NOT_FOUND',
  PLAN_VERSION_NOT_FOUND: 'PLAN_VERSION_NOT_FOUND',
  CHARGE_NOT_FOUND: 'CHARGE_NOT_FOUND',
  PLAN_ARCHIVED: 'PLAN_ARCHIVED',
  ADD_ON_NOT_FOUND: 'ADD_ON_NOT_FOUND',
  ADD_ON_ARCHIVED: 'ADD_ON_ARCHIVED',
  ADD_ON_NOT_RECURRING: 'ADD_ON_NOT_RECURRING',
  ADD_ON_NOT_FOR_PLAN: 'ADD_ON_NOT_FOR_PLAN',
  TEST_CLOCK_NOT_FOUND: 'TEST_CLOCK_NOT_FOUND',
  TEST_CLOCK_BUSY: 'TEST_CLOCK_BUSY',
  TEST_CLOCKS_DISABLED: 'TEST_CLOCKS_DISABLED',
} as const;

/** INVALID_ARGUMENT listing every offending field. */
export function invalidArgument(message: string, violations: readonly FieldViolation[]): InvalidArgumentError {
  return new InvalidArgumentError(message, violations);
}

// ---- customers ----

/** NOT_FOUND: no customer with this id. */
export function customerNotFound(id: string): NotFoundError {
  return new NotFoundError(Reason.CUSTOMER_NOT_FOUND, `no customer ${quote(id)}`);
}

/** NOT_FOUND: no customer with this external id. */
export function customerNotFoundByExternalId(externalId: string): NotFoundError {
  return new NotFoundError(Reason.CUSTOMER_NOT_FOUND, `no customer with external id ${quote(externalId)}`);
}

/** ALREADY_EXISTS: another customer has this external id. */
export function externalIdTaken(externalId: string): AlreadyExistsError {
  return new AlreadyExistsError(Reason.EXTERNAL_ID_TAKEN, `a customer with external id ${quote(externalId)} exists`);
}

/** FAILED_PRECONDITION: the currency is fixed once the customer has a subscription. */
export function currencyLocked(customerId: string): FailedPreconditionError {
  return new FailedPreconditionError(
    Reason.CURRENCY_LOCKED,
    'the currency is fixed once the customer has a subscription',
    { detail: `customer ${customerId}` },
  );
}

/** FAILED_PRECONDITION: a customer cannot move under itself or its descendants. */
export function treeCycle(customerId: string, parentId: string): FailedPreconditionError {
  return new FailedPreconditionError(Reason.TREE_CYCLE, 'a customer cannot move under itself or its descendants', {
    detail: `customer ${customerId}, parent ${parentId}`,
  });
}

/** FAILED_PRECONDITION: the tree would have more than `levels` levels. */
export function treeTooDeep(levels: number): FailedPreconditionError {
  return new FailedPreconditionError(Reason.TREE_TOO_DEEP, `organisation trees have at most ${levels} levels`);
}

/** FAILED_PRECONDITION: a child and its parent live on different test clocks. */
export function testClockMismatch(): FailedPreconditionError {
  return new FailedPreconditionError(Reason.TEST_CLOCK_MISMATCH, 'a child lives on the same test clock as its parent');
}

// ---- subscriptions ----

/** NOT_FOUND: no subscription with this id. */
export function subscriptionNotFound(id: string): NotFoundError {
  return new NotFoundError(Reason.SUBSCRIPTION_NOT_FOUND, `no subscription ${quote(id)}`);
}

/** FAILED_PRECONDITION: the lifecycle does not allow this change (`why` says what and from which state). */
export function invalidTransition(why: string, subscriptionId: string): FailedPreconditionError {
  return new FailedPreconditionError(Reason.INVALID_TRANSITION, why, { detail: `subscription ${subscriptionId}` });
}

/** FAILED_PRECONDITION: the customer is billed in another currency than the one asked for. */
export function currencyMismatch(customerCurrency: string, asked: string): FailedPreconditionError {
  return new FailedPreconditionError(
    Reason.CURRENCY_MISMATCH,
    `the customer is billed in ${customerCurrency}, not ${quote(asked)}`,
  );
}

/** FAILED_PRECONDITION: a plan version or add-on (`what`) is not sold in the currency. */
export function currencyNotOffered(what: string, currency: string): FailedPreconditionError {
  return new FailedPreconditionError(Reason.CURRENCY_NOT_OFFERED, `${what} is not sold in ${quote(currency)}`);
}

/** FAILED_PRECONDITION: a change to another billing interval takes effect at the period end only. */
export function intervalChangeAtPeriodEnd(): FailedPreconditionError {
  return new FailedPreconditionError(
    Reason.INTERVAL_CHANGE_AT_PERIOD_END,
    'a change to another billing interval takes effect at the period end (timing PERIOD_END)',
  );
}

/** FAILED_PRECONDITION: the subscription has no scheduled change to drop. */
export function noScheduledChange(subscriptionId: string): FailedPreconditionError {
  return new FailedPreconditionError(Reason.NO_SCHEDULED_CHANGE, 'the subscription has no scheduled change', {
    detail: `subscription ${subscriptionId}`,
  });
}

// ---- the catalog ----

/** NOT_FOUND: the catalog has no published plan with this key. */
export function planNotFound(planKey: string): NotFoundError {
  return new NotFoundError(Reason.PLAN_NOT_FOUND, `no published plan ${quote(planKey)}`);
}

/** NOT_FOUND: the plan has no published version with this number (a draft counts as none). */
export function planVersionNotFound(planKey: string, version: number): NotFoundError {
  return new NotFoundError(Reason.PLAN_VERSION_NOT_FOUND, `no version ${version} of plan ${quote(planKey)}`);
}

/** NOT_FOUND: the plan version has no charge `chargeKey`, which the request names at `field`. */
export function chargeNotFound(planKey: string, version: number, chargeKey: string, field: string): NotFoundError {
  return new NotFoundError(
    Reason.CHARGE_NOT_FOUND,
    `${field}: version ${version} of plan ${quote(planKey)} has no charge ${quote(chargeKey)}`,
  );
}

/** FAILED_PRECONDITION: the plan is archived. */
export function planArchived(planKey: string): FailedPreconditionError {
  return new FailedPreconditionError(Reason.PLAN_ARCHIVED, `plan ${quote(planKey)} is archived`);
}

/** NOT_FOUND: the catalog has no add-on with this key. */
export function addOnNotFound(key: string): NotFoundError {
  return new NotFoundError(Reason.ADD_ON_NOT_FOUND, `no add-on ${quote(key)}`);
}

/** FAILED_PRECONDITION: the add-on is archived. */
export function addOnArchived(key: string): FailedPreconditionError {
  return new FailedPreconditionError(Reason.ADD_ON_ARCHIVED, `add-on ${quote(key)} is archived`);
}

/** FAILED_PRECONDITION: the add-on is a one-off purchase, not a recurring one. */
export function addOnNotRecurring(key: string): FailedPreconditionError {
  return new FailedPreconditionError(Reason.ADD_ON_NOT_RECURRING, `add-on ${quote(key)} is a one-off purchase`);
}

/** FAILED_PRECONDITION: the add-on is not sold for the plan. */
export function addOnNotForPlan(key: string, planKey: string): FailedPreconditionError {
  return new FailedPreconditionError(
    Reason.ADD_ON_NOT_FOR_PLAN,
    `add-on ${quote(key)} cannot be added to ${quote(planKey)}`,
  );
}

/** UNAVAILABLE: the catalog could not be reached; `cause` and `detail` say how, for the logs. */
export function catalogUnavailable(detail: string, cause: unknown): UnavailableError {
  return new UnavailableError('the catalog is unavailable; retry later', { detail, cause });
}

// ---- test clocks ----

/** NOT_FOUND: no test clock with this id. */
export function testClockNotFound(id: string): NotFoundError {
  return new NotFoundError(Reason.TEST_CLOCK_NOT_FOUND, `no test clock ${quote(id)}`);
}

/** FAILED_PRECONDITION: another advance (or a deletion) holds the test clock. */
export function testClockBusy(id: string): FailedPreconditionError {
  return new FailedPreconditionError(Reason.TEST_CLOCK_BUSY, 'the test clock is being advanced', {
    detail: `test clock ${id}`,
  });
}

/** FAILED_PRECONDITION: this deployment does not allow test clocks. */
export function testClocksDisabled(): FailedPreconditionError {
  return new FailedPreconditionError(Reason.TEST_CLOCKS_DISABLED, 'test clocks are disabled in this deployment');
}
