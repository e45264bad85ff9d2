// Validation of what callers send, and the validated inputs the use cases take. Each `validate*` builds a use
// case's input from its request, listing every violation it finds with its proto field path, or throws
// INVALID_ARGUMENT; required fields are checked on reads as on writes. What needs the subscription's plan version
// (seat charges, contract prices) is checked by the use case against it, with the functions at the end.

import { type FieldViolation, quote, refuseViolations } from '@billing/kit/errors';
import { type PageRequest, readPageRequest } from '@billing/kit/pagination';
import { MAX_ID_LENGTH, MAX_KEY_LENGTH } from '@billing/kit/request-guard';
import { isTimeZone } from '@billing/kit/time-zone';
import { isCurrencyCode, parseDecimal } from '@billing/money';
import { type PlanVersion, PriceModel } from '@billing/proto/billing/catalog/v1/resources_pb';
import type {
  CreateCustomerRequest,
  GetCustomerRequest,
  ListCustomersRequest,
  SetCustomerParentRequest,
  UpdateCustomerRequest,
} from '@billing/proto/billing/subscription/v1/customer_service_pb';
import {
  type AddonQuantity,
  AnchorKind,
  type BillingSettings,
  BillingSettingsSchema,
  BillTo,
  CancelMode,
  type ChargeQuantity,
  PaymentTerms,
  type PriceOverride,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import {
  type AdvanceTestClockRequest,
  type CancelSubscriptionRequest,
  type ChangePlanRequest,
  type ChangeQuantityRequest,
  ChangeTiming,
  type CreateSubscriptionRequest,
  type CreateTestClockRequest,
  type ListProrationItemsRequest,
  type ListSubscriptionsRequest,
  type ListTestClocksRequest,
  type MigrateSubscriptionsRequest,
  type PreviewChangeRequest,
} from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { clone, create } from '@bufbuild/protobuf';
import { type Timestamp, timestampDate } from '@bufbuild/protobuf/wkt';
import { BILLING_PATHS, type BillingField } from './customer.ts';
import { chargeNotFound, invalidArgument } from './errors.ts';
import { isZero } from './terms.ts';

type Violations = FieldViolation[];

// The limits of what callers send (docs/subscriptions.md and docs/customers.md list them). Ids and catalog keys
// have the contract's limits, which the kit's request guard enforces too (MAX_ID_LENGTH, MAX_KEY_LENGTH): ids of
// customers, subscriptions and test clocks are 30 characters, but any id the contract allows is looked up.
const MAX_EXTERNAL_ID = 128;
const MAX_EXTERNAL_IDS = 100;
const MAX_QUERY = 200;
const MAX_TRIAL_DAYS = 730;
const MAX_CANCEL_REASON = 500;
const MAX_NAME = 200;
const MAX_SHORT_TEXT = 64;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const WHOLE = /^\d{1,9}$/;
// The times accepted: those from which every time a subscription computes is right and fits in a
// google.protobuf.Timestamp (the years 0001-9999), which a time outside cannot be written in. A prorated first
// period is measured against the full period it is the tail of, up to a year (and a time zone's offset) before
// its start; a trial ends up to MAX_TRIAL_DAYS (730 days) after it; a period after the start ends a year after
// it at most, and later ones are computed when the clock reaches their start, which an accepted time bounds too.
// The calendar's arithmetic (JavaScript's Date.UTC) reads the years 0-99 as 1900-1999, so the first century,
// and the year before an accepted time, are left out.
const MIN_SECONDS = BigInt(Date.parse('0101-01-01T00:00:00Z') / 1000);
const MAX_SECONDS = BigInt(Date.parse('9997-12-31T23:59:59Z') / 1000);

function checkId(out: Violations, field: string, id: string): void {
  if (id === '') out.push({ field, description: 'required' });
  else checkOptionalId(out, field, id);
}

function checkOptionalId(out: Violations, field: string, id: string): void {
  if (id.length > MAX_ID_LENGTH) out.push({ field, description: `at most ${MAX_ID_LENGTH} characters` });
}

function checkKey(out: Violations, field: string, key: string): void {
  if (key === '') out.push({ field, description: 'required' });
  else checkOptionalKey(out, field, key);
}

function checkOptionalKey(out: Violations, field: string, key: string): void {
  if (key.length > MAX_KEY_LENGTH) out.push({ field, description: `at most ${MAX_KEY_LENGTH} characters` });
}

function checkVersion(out: Violations, field: string, version: number, description = '0 (latest) or a version'): void {
  if (!Number.isInteger(version) || version < 0) out.push({ field, description });
}

/** A time of the contract's range, or undefined (with a violation when it is required or out of range). */
function checkTime(out: Violations, field: string, time: Timestamp | undefined, required: boolean) {
  if (!time) {
    if (required) out.push({ field, description: 'required' });
    return undefined;
  }
  if (time.seconds < MIN_SECONDS || time.seconds > MAX_SECONDS || time.nanos < 0 || time.nanos > 999_999_999) {
    out.push({ field, description: 'a time in the years 0101-9997' });
    return undefined;
  }
  return timestampDate(time);
}

/** Checks that `value` is one of `allowed` (a known enum value the field accepts). */
function checkEnum(out: Violations, field: string, value: number, allowed: readonly number[], names: string): void {
  if (!allowed.includes(value)) out.push({ field, description: `unknown value ${value}: ${names}` });
}

/** A validated list request: its filters and its page. */
export interface ListInput<Filters> {
  /** The filters (empty values do not filter). */
  filters: Filters;
  /** The page asked for. */
  page: PageRequest;
}

/** INVALID_ARGUMENT: a required message field is missing. */
function missing(field: string) {
  return invalidArgument(`${field} is required`, [{ field, description: 'required' }]);
}

/** The id in a field of an RPC that names one object; INVALID_ARGUMENT if it is missing or too long. */
export function validateId(id: string, field: string): string {
  if (id === '') throw missing(field);
  const out: Violations = [];
  checkOptionalId(out, field, id);
  refuseViolations(out, `${field} is too long`);
  return id;
}

// ---- customers ----

/** Checks free-form labels: at most 50 entries, keys up to 40 characters, values up to 500. */
function checkMetadata(out: Violations, field: string, metadata: Record<string, string>): void {
  const entries = Object.entries(metadata);
  if (entries.length > 50) out.push({ field, description: 'at most 50 entries' });
  for (const [key, value] of entries) {
    // A path names the key, cut short past the longest a key may be.
    const at = `${field}[${key.slice(0, 41)}]`;
    if (key.length === 0 || key.length > 40) out.push({ field: at, description: 'keys are 1-40 characters' });
    if (value.length > 500) out.push({ field: at, description: 'values are at most 500 characters' });
  }
}

function checkName(out: Violations, field: string, name: string): void {
  if (name.trim() === '' || name.length > MAX_NAME) {
    out.push({ field, description: `required, at most ${MAX_NAME} characters` });
  }
}

/** Every violation of the billing settings, with field paths under `prefix`. */
function billingViolations(billing: BillingSettings, prefix: string): Violations {
  const out: Violations = [];
  const field = (name: string) => `${prefix}.${name}`;
  if (billing.currencyCode !== '' && !isCurrencyCode(billing.currencyCode)) {
    out.push({ field: field('currency_code'), description: 'must be an ISO 4217 code such as "USD"' });
  }
  if (billing.timeZone !== '' && !isTimeZone(billing.timeZone)) {
    out.push({ field: field('time_zone'), description: 'must be an IANA time zone such as "Europe/Berlin"' });
  }
  if (!(billing.paymentTerms in PaymentTerms)) {
    out.push({ field: field('payment_terms'), description: `unknown value ${billing.paymentTerms}` });
  }
  if (!Number.isInteger(billing.netDays) || billing.netDays < 0 || billing.netDays > 365) {
    out.push({ field: field('net_days'), description: 'must be 0-365' });
  }
  if (billing.invoiceEmail !== '' && (billing.invoiceEmail.length > 254 || !EMAIL.test(billing.invoiceEmail))) {
    out.push({ field: field('invoice_email'), description: 'must be an email address' });
  }
  if (billing.taxCountryCode !== '' && !/^[A-Z]{2}$/.test(billing.taxCountryCode)) {
    out.push({ field: field('tax_country_code'), description: 'must be an ISO 3166-1 alpha-2 code such as "DE"' });
  }
  for (const name of ['taxId', 'poNumber'] as const) {
    if (billing[name].length > MAX_SHORT_TEXT) {
      out.push({
        field: field(name === 'taxId' ? 'tax_id' : 'po_number'),
        description: `at most ${MAX_SHORT_TEXT} characters`,
      });
    }
  }
  if (billing.stripeCustomerId !== '' && !/^cus_[A-Za-z0-9]{1,250}$/.test(billing.stripeCustomerId)) {
    out.push({ field: field('stripe_customer_id'), description: 'must be a Stripe customer id (cus_...)' });
  }
  return out;
}

/** Billing settings with their defaults: payment terms are CHARGE_AUTOMATICALLY unless set. */
export function withBillingDefaults(billing: BillingSettings): BillingSettings {
  const out = clone(BillingSettingsSchema, billing);
  if (out.paymentTerms === PaymentTerms.UNSPECIFIED) out.paymentTerms = PaymentTerms.CHARGE_AUTOMATICALLY;
  return out;
}

/** A customer to create. */
export interface CreateCustomerInput {
  /** The caller's id for it. */
  externalId: string;
  /** Its name. */
  name: string;
  /** Its billing settings, with their defaults. */
  billing: BillingSettings;
  /** Its parent, or empty for a root. */
  parentId: string;
  /** Who pays for it: SELF or PARENT. */
  billTo: BillTo.SELF | BillTo.PARENT;
  /** The test clock it lives on, or empty for real time. */
  testClockId: string;
  /** Free-form labels. */
  metadata: Record<string, string>;
}

/** Validates CreateCustomer. */
export function validateCreateCustomer(req: CreateCustomerRequest): CreateCustomerInput {
  const customer = req.customer;
  if (!customer) throw missing('customer');
  const out: Violations = [];
  if (customer.externalId.length === 0 || customer.externalId.length > MAX_EXTERNAL_ID) {
    out.push({ field: 'customer.external_id', description: `required, 1-${MAX_EXTERNAL_ID} characters` });
  }
  checkName(out, 'customer.name', customer.name);
  const billing = customer.billing ?? create(BillingSettingsSchema);
  out.push(...billingViolations(billing, 'customer.billing'));
  checkMetadata(out, 'customer.metadata', customer.metadata);
  checkEnum(
    out,
    'customer.bill_to',
    customer.billTo,
    [BillTo.UNSPECIFIED, BillTo.SELF, BillTo.PARENT],
    'SELF or PARENT',
  );
  if (customer.billTo === BillTo.PARENT && customer.parentId === '') {
    out.push({ field: 'customer.bill_to', description: 'BILL_TO_PARENT requires a parent_id' });
  }
  checkOptionalId(out, 'customer.parent_id', customer.parentId);
  checkOptionalId(out, 'customer.test_clock_id', customer.testClockId);
  refuseViolations(out, 'the customer is not valid');
  return {
    externalId: customer.externalId,
    name: customer.name,
    billing: withBillingDefaults(billing),
    parentId: customer.parentId,
    billTo: customer.billTo === BillTo.PARENT ? BillTo.PARENT : BillTo.SELF,
    testClockId: customer.testClockId,
    metadata: customer.metadata,
  };
}

/** The changes of an update: the fields its mask names, with their new values. */
export interface UpdateCustomerInput {
  /** The customer to change. */
  id: string;
  /** The new name, when the mask names it. */
  name: string | undefined;
  /** The new labels, when the mask names them. */
  metadata: Record<string, string> | undefined;
  /** The billing fields the mask names (all of them for `billing`), with their new values. */
  billing: Partial<Pick<BillingSettings, BillingField>>;
}

/** Validates UpdateCustomer: the mask names updatable fields, and their new values are valid. */
export function validateUpdateCustomer(req: UpdateCustomerRequest): UpdateCustomerInput {
  const customer = req.customer;
  if (!customer) throw missing('customer');
  const paths = req.updateMask?.paths ?? [];
  if (paths.length === 0)
    refuseViolations([{ field: 'update_mask', description: 'required' }], 'update_mask names no field');
  const bad = paths.filter((p) => !(p in BILLING_PATHS) && !['name', 'metadata', 'billing'].includes(p));
  refuseViolations(
    bad.map((p) => ({ field: 'update_mask', description: `${quote(p)} cannot be updated here` })),
    `${bad.length === 1 ? 'a field' : 'fields'} of update_mask cannot be updated`,
  );
  const source = customer.billing ?? create(BillingSettingsSchema);
  const billing: Partial<Pick<BillingSettings, BillingField>> = {};
  for (const path of paths) {
    const fields = path === 'billing' ? Object.values(BILLING_PATHS) : [BILLING_PATHS[path]];
    for (const field of fields) if (field) Object.assign(billing, { [field]: source[field] });
  }
  const out: Violations = [];
  checkId(out, 'customer.id', customer.id);
  if (paths.includes('name')) checkName(out, 'customer.name', customer.name);
  out.push(...billingViolations(create(BillingSettingsSchema, billing), 'customer.billing'));
  if (paths.includes('metadata')) checkMetadata(out, 'customer.metadata', customer.metadata);
  refuseViolations(out, 'the customer update is not valid');
  return {
    id: customer.id,
    name: paths.includes('name') ? customer.name : undefined,
    metadata: paths.includes('metadata') ? { ...customer.metadata } : undefined,
    billing,
  };
}

/** A move of a customer (and its subtree) under another parent, or to the root. */
export interface SetCustomerParentInput {
  /** The customer to move. */
  customerId: string;
  /** Its new parent, or empty for the root. */
  parentId: string;
  /** Who pays for it after the move. */
  billTo: BillTo.SELF | BillTo.PARENT;
}

/** Validates SetCustomerParent. */
export function validateSetCustomerParent(req: SetCustomerParentRequest): SetCustomerParentInput {
  const out: Violations = [];
  checkId(out, 'customer_id', req.customerId);
  checkOptionalId(out, 'parent_id', req.parentId);
  checkEnum(out, 'bill_to', req.billTo, [BillTo.UNSPECIFIED, BillTo.SELF, BillTo.PARENT], 'SELF or PARENT');
  const billTo = req.billTo === BillTo.PARENT ? BillTo.PARENT : BillTo.SELF;
  if (req.parentId === '' && billTo === BillTo.PARENT) {
    out.push({ field: 'bill_to', description: 'BILL_TO_PARENT requires a parent_id' });
  }
  refuseViolations(out, 'the move is not valid');
  return { customerId: req.customerId, parentId: req.parentId, billTo };
}

/** A customer by one of its two ids. */
export type CustomerKey = { id: string } | { externalId: string };

/** Validates GetCustomer: one of the two ids is set. */
export function validateGetCustomer(req: GetCustomerRequest): CustomerKey {
  const out: Violations = [];
  if (req.key.case === 'id') {
    checkId(out, 'id', req.key.value);
    refuseViolations(out, 'id is not valid');
    return { id: req.key.value };
  }
  if (req.key.case === 'externalId') {
    if (req.key.value === '' || req.key.value.length > MAX_EXTERNAL_ID) {
      out.push({ field: 'external_id', description: `required, 1-${MAX_EXTERNAL_ID} characters` });
    }
    refuseViolations(out, 'external_id is not valid');
    return { externalId: req.key.value };
  }
  throw invalidArgument('id or external_id is required', [
    { field: 'key', description: 'required: id or external_id' },
  ]);
}

/** Filters of a customer list; empty values do not filter. */
export interface CustomerFilters {
  /** Children of this customer only. */
  parentId: string;
  /** Roots only. */
  rootsOnly: boolean;
  /** Customers of this test clock only. */
  testClockId: string;
  /** These external ids only. */
  externalIds: string[];
  /** Name or external id containing this text, whatever its case. */
  query: string;
}

/** Validates ListCustomers. */
export function validateListCustomers(req: ListCustomersRequest): ListInput<CustomerFilters> {
  const out: Violations = [];
  checkOptionalId(out, 'parent_id', req.parentId);
  checkOptionalId(out, 'test_clock_id', req.testClockId);
  if (req.externalIds.length > MAX_EXTERNAL_IDS) {
    out.push({ field: 'external_ids', description: `at most ${MAX_EXTERNAL_IDS}` });
  }
  req.externalIds.forEach((id, i) => {
    if (id.length > MAX_EXTERNAL_ID) {
      out.push({ field: `external_ids[${i}]`, description: `at most ${MAX_EXTERNAL_ID} characters` });
    }
  });
  if (req.query.length > MAX_QUERY) out.push({ field: 'query', description: `at most ${MAX_QUERY} characters` });
  refuseViolations(out, 'the list request is not valid');
  const filters: CustomerFilters = {
    parentId: req.parentId,
    rootsOnly: req.rootsOnly,
    testClockId: req.testClockId,
    externalIds: req.externalIds,
    query: req.query,
  };
  return { filters, page: readPageRequest(req.pageSize, req.pageToken, filters) };
}

// ---- subscriptions ----

/** A plan version as a request names it: a plan and a version number (0: the latest published). */
export interface PlanRef {
  /** The plan key. */
  planKey: string;
  /** The version, or 0 for the latest published. */
  version: number;
  /** The request's fields that hold the key and the version, which a refusal of either names. */
  fields: { planKey: string; version: string };
}

/** The plan version `planKey` and `version` of a request, held by its `plan_key` and `versionField`. */
function planRef(planKey: string, version: number, versionField: string): PlanRef {
  return { planKey, version, fields: { planKey: 'plan_key', version: versionField } };
}

/** An add-on as a request names it. */
export interface AddOnRef {
  /** The add-on key. */
  key: string;
  /** The request's field that holds it, which a refusal of it names. */
  field: string;
}

/** A subscription to create, before its plan is read from the catalog. */
export interface CreateSubscriptionInput {
  /** The customer subscribing. */
  customerId: string;
  /** The plan version asked for. */
  plan: PlanRef;
  /** Seat quantities (checked against the plan version by the use case). */
  quantities: ChargeQuantity[];
  /** Recurring add-ons, each with a positive quantity. */
  addons: AddonQuantity[];
  /** Contract prices (checked against the plan version by the use case). */
  priceOverrides: PriceOverride[];
  /** How periods align (kind UNSPECIFIED is an anniversary). */
  anchor: { kind: AnchorKind; dayOfMonth: number };
  /** Trial length in days; undefined: the plan's. */
  trialDays: number | undefined;
  /** When it starts; undefined: now on the customer's clock. */
  startTime: Date | undefined;
  /** Its currency; empty: the customer's. */
  currencyCode: string;
  /** Free-form labels. */
  metadata: Record<string, string>;
}

function checkAddons(out: Violations, field: string, addons: readonly AddonQuantity[], allowZero: boolean): void {
  const seen = new Set<string>();
  addons.forEach((a, i) => {
    checkKey(out, `${field}[${i}].addon_key`, a.addonKey);
    if (seen.has(a.addonKey)) out.push({ field: `${field}[${i}].addon_key`, description: 'listed twice' });
    seen.add(a.addonKey);
    if (!WHOLE.test(a.quantity) || (!allowZero && isZero(a.quantity))) {
      out.push({
        field: `${field}[${i}].quantity`,
        description: allowZero ? 'a whole number' : 'a positive whole number',
      });
    }
  });
}

/**
 * The add-ons whose catalog entries a request needs: those it attaches or changes (not those it detaches), each
 * once, named by its place in the request's `addons`.
 */
export function addOnsToRead(addons: readonly AddonQuantity[]): AddOnRef[] {
  const refs = new Map<string, AddOnRef>();
  addons.forEach((a, i) => {
    if (!isZero(a.quantity) && !refs.has(a.addonKey)) {
      refs.set(a.addonKey, { key: a.addonKey, field: `addons[${i}].addon_key` });
    }
  });
  return [...refs.values()];
}

/** Validates CreateSubscription, all but what needs the plan version. */
export function validateCreateSubscription(req: CreateSubscriptionRequest): CreateSubscriptionInput {
  const out: Violations = [];
  checkId(out, 'customer_id', req.customerId);
  checkKey(out, 'plan_key', req.planKey);
  checkVersion(out, 'plan_version', req.planVersion);
  checkAddons(out, 'addons', req.addons, false);
  const anchorKind = req.anchor?.kind ?? AnchorKind.ANNIVERSARY;
  checkEnum(
    out,
    'anchor.kind',
    anchorKind,
    [AnchorKind.UNSPECIFIED, AnchorKind.ANNIVERSARY, AnchorKind.DAY_OF_MONTH],
    'ANNIVERSARY or DAY_OF_MONTH',
  );
  const day = req.anchor?.dayOfMonth ?? 0;
  if (anchorKind === AnchorKind.DAY_OF_MONTH && (day < 1 || day > 31)) {
    out.push({ field: 'anchor.day_of_month', description: 'a day of the month, 1-31' });
  }
  if (anchorKind !== AnchorKind.DAY_OF_MONTH && day !== 0) {
    out.push({ field: 'anchor.day_of_month', description: 'only for ANCHOR_KIND_DAY_OF_MONTH' });
  }
  if (req.trialDays !== undefined && (req.trialDays < 0 || req.trialDays > MAX_TRIAL_DAYS)) {
    out.push({ field: 'trial_days', description: `0-${MAX_TRIAL_DAYS} days` });
  }
  const startTime = checkTime(out, 'start_time', req.startTime, false);
  if (req.currencyCode !== '' && !isCurrencyCode(req.currencyCode)) {
    out.push({ field: 'currency_code', description: 'must be an ISO 4217 code such as "USD"' });
  }
  checkMetadata(out, 'metadata', req.metadata);
  refuseViolations(out, 'the subscription is not valid');
  return {
    customerId: req.customerId,
    plan: planRef(req.planKey, req.planVersion, 'plan_version'),
    quantities: req.quantities,
    addons: req.addons,
    priceOverrides: req.priceOverrides,
    anchor: { kind: anchorKind, dayOfMonth: day },
    trialDays: req.trialDays,
    startTime,
    currencyCode: req.currencyCode,
    metadata: req.metadata,
  };
}

/** A move to another plan or version, before it is read from the catalog. */
export interface ChangePlanInput {
  /** The subscription to change. */
  subscriptionId: string;
  /** The plan version to move to. */
  plan: PlanRef;
  /** Seat quantities on the new plan; empty: carried over by charge key. */
  quantities: ChargeQuantity[];
  /** Contract prices on the new plan; empty: carried over by charge key. */
  priceOverrides: PriceOverride[];
  /** Now, or at the period end. */
  timing: ChangeTiming.IMMEDIATELY | ChangeTiming.PERIOD_END;
}

/** Validates ChangePlan, all but what needs the plan version. */
export function validateChangePlan(req: ChangePlanRequest): ChangePlanInput {
  const out: Violations = [];
  checkId(out, 'subscription_id', req.subscriptionId);
  checkKey(out, 'plan_key', req.planKey);
  checkVersion(out, 'plan_version', req.planVersion);
  if (req.timing !== ChangeTiming.IMMEDIATELY && req.timing !== ChangeTiming.PERIOD_END) {
    out.push({ field: 'timing', description: 'required: IMMEDIATELY or PERIOD_END' });
  }
  refuseViolations(out, 'the change is not valid');
  return {
    subscriptionId: req.subscriptionId,
    plan: planRef(req.planKey, req.planVersion, 'plan_version'),
    quantities: req.quantities,
    priceOverrides: req.priceOverrides,
    timing: req.timing === ChangeTiming.PERIOD_END ? ChangeTiming.PERIOD_END : ChangeTiming.IMMEDIATELY,
  };
}

/** A change of seats and add-ons. */
export interface ChangeQuantityInput {
  /** The subscription to change. */
  subscriptionId: string;
  /** Seat quantities replacing the named ones (checked against the plan version by the use case). */
  quantities: ChargeQuantity[];
  /** Add-ons to attach or change, or to detach with quantity "0". */
  addons: AddonQuantity[];
}

/** Validates ChangeQuantity, all but what needs the plan version. */
export function validateChangeQuantity(req: ChangeQuantityRequest): ChangeQuantityInput {
  const out: Violations = [];
  checkId(out, 'subscription_id', req.subscriptionId);
  checkAddons(out, 'addons', req.addons, true);
  refuseViolations(out, 'the change is not valid');
  return { subscriptionId: req.subscriptionId, quantities: req.quantities, addons: req.addons };
}

/** A cancellation. */
export interface CancelSubscriptionInput {
  /** The subscription to cancel. */
  subscriptionId: string;
  /** At the period end, or now with or without credit. */
  mode: CancelMode.PERIOD_END | CancelMode.IMMEDIATELY_WITH_CREDIT | CancelMode.IMMEDIATELY_WITHOUT_CREDIT;
  /** Why, for the record. */
  reason: string;
}

/** Validates CancelSubscription. */
export function validateCancelSubscription(req: CancelSubscriptionRequest): CancelSubscriptionInput {
  const out: Violations = [];
  checkId(out, 'subscription_id', req.subscriptionId);
  const mode = req.mode;
  const known =
    mode === CancelMode.PERIOD_END ||
    mode === CancelMode.IMMEDIATELY_WITH_CREDIT ||
    mode === CancelMode.IMMEDIATELY_WITHOUT_CREDIT;
  if (!known) out.push({ field: 'mode', description: 'a CancelMode other than UNSPECIFIED' });
  if (req.reason.length > MAX_CANCEL_REASON) {
    out.push({ field: 'reason', description: `at most ${MAX_CANCEL_REASON} characters` });
  }
  if (out.length > 0 || !known) throw invalidArgument('the cancellation is not valid', out);
  return { subscriptionId: req.subscriptionId, mode, reason: req.reason };
}

/** A migration of every live subscription on one version to another, at their next renewal. */
export interface MigrateSubscriptionsInput {
  /** The version to move to (0: the latest published). */
  to: PlanRef;
  /** The version to move from. */
  fromVersion: number;
  /** Only count and list who would move. */
  dryRun: boolean;
}

/** Validates MigrateSubscriptions. */
export function validateMigrateSubscriptions(req: MigrateSubscriptionsRequest): MigrateSubscriptionsInput {
  const out: Violations = [];
  checkKey(out, 'plan_key', req.planKey);
  if (!Number.isInteger(req.fromVersion) || req.fromVersion < 1) {
    out.push({ field: 'from_version', description: 'a version, 1 or more' });
  }
  checkVersion(out, 'to_version', req.toVersion);
  refuseViolations(out, 'the migration is not valid');
  return { to: planRef(req.planKey, req.toVersion, 'to_version'), fromVersion: req.fromVersion, dryRun: req.dryRun };
}

/** The change a preview computes: to another plan or version, or of seats and add-ons. */
export type PreviewedChange =
  | {
      /** A plan change. */
      kind: 'plan';
      /** The plan (empty: the subscription's own) and version (0: the latest published). */
      plan: PlanRef;
      /** Seat quantities on the new plan; empty: carried over. */
      quantities: ChargeQuantity[];
    }
  | {
      /** A change of seats and add-ons. */
      kind: 'quantity';
      /** Seat quantities replacing the named ones. */
      quantities: ChargeQuantity[];
      /** Add-ons to attach, change or detach. */
      addons: AddonQuantity[];
    };

/** A preview of an immediate change. */
export interface PreviewChangeInput {
  /** The subscription. */
  subscriptionId: string;
  /** The change. */
  change: PreviewedChange;
  /** When it would take effect; undefined: now on the customer's clock. */
  effectiveTime: Date | undefined;
}

/** Validates PreviewChange: a plan or version names a plan change, otherwise seats and add-ons change. */
export function validatePreviewChange(req: PreviewChangeRequest): PreviewChangeInput {
  const out: Violations = [];
  checkId(out, 'subscription_id', req.subscriptionId);
  checkOptionalKey(out, 'plan_key', req.planKey);
  checkVersion(out, 'plan_version', req.planVersion);
  const changesPlan = req.planKey !== '' || req.planVersion !== 0;
  if (!changesPlan) checkAddons(out, 'addons', req.addons, true);
  const effectiveTime = checkTime(out, 'effective_time', req.effectiveTime, false);
  refuseViolations(out, 'the preview is not valid');
  return {
    subscriptionId: req.subscriptionId,
    change: changesPlan
      ? { kind: 'plan', plan: planRef(req.planKey, req.planVersion, 'plan_version'), quantities: req.quantities }
      : { kind: 'quantity', quantities: req.quantities, addons: req.addons },
    effectiveTime,
  };
}

/** Filters of a subscription list; empty values do not filter. */
export interface SubscriptionFilters {
  /** This customer only. */
  customerId: string;
  /** Customers this payer pays for. */
  payerId: string;
  /** This plan only. */
  planKey: string;
  /** This plan version only. */
  planVersion: number;
  /** These states only (empty: all). */
  states: SubscriptionState[];
  /** With a scheduled change only. */
  scheduledChangeOnly: boolean;
}

const STATES = [
  SubscriptionState.PENDING,
  SubscriptionState.TRIALING,
  SubscriptionState.ACTIVE,
  SubscriptionState.PAST_DUE,
  SubscriptionState.CANCELED,
  SubscriptionState.ENDED,
];

/** Validates ListSubscriptions. */
export function validateListSubscriptions(req: ListSubscriptionsRequest): ListInput<SubscriptionFilters> {
  const out: Violations = [];
  checkOptionalId(out, 'customer_id', req.customerId);
  checkOptionalId(out, 'payer_id', req.payerId);
  checkOptionalKey(out, 'plan_key', req.planKey);
  checkVersion(out, 'plan_version', req.planVersion, '0 (any) or a version');
  req.states.forEach((state, i) => {
    checkEnum(out, `states[${i}]`, state, STATES, 'a SubscriptionState other than UNSPECIFIED');
  });
  refuseViolations(out, 'the list request is not valid');
  const filters: SubscriptionFilters = {
    customerId: req.customerId,
    payerId: req.payerId,
    planKey: req.planKey,
    planVersion: req.planVersion,
    states: req.states,
    scheduledChangeOnly: req.scheduledChangeOnly,
  };
  return { filters, page: readPageRequest(req.pageSize, req.pageToken, filters) };
}

/** Validates ListProrationItems: the subscription's id is required. */
export function validateListProrationItems(req: ListProrationItemsRequest): ListInput<{ subscriptionId: string }> {
  const filters = { subscriptionId: validateId(req.subscriptionId, 'subscription_id') };
  return { filters, page: readPageRequest(req.pageSize, req.pageToken, filters) };
}

// ---- test clocks ----

/** A test clock to create. */
export interface CreateTestClockInput {
  /** Its name. */
  name: string;
  /** The time it is frozen at. */
  frozenTime: Date;
}

/** Validates CreateTestClock. */
export function validateCreateTestClock(req: CreateTestClockRequest): CreateTestClockInput {
  const out: Violations = [];
  if (req.name.length > MAX_NAME) out.push({ field: 'name', description: `at most ${MAX_NAME} characters` });
  const frozenTime = checkTime(out, 'frozen_time', req.frozenTime, true);
  if (out.length > 0 || !frozenTime) throw invalidArgument('the test clock is not valid', out);
  return { name: req.name, frozenTime };
}

/** An advance of a test clock. */
export interface AdvanceTestClockInput {
  /** The clock. */
  id: string;
  /** The time to move it to. */
  to: Date;
}

/** Validates AdvanceTestClock. */
export function validateAdvanceTestClock(req: AdvanceTestClockRequest): AdvanceTestClockInput {
  const out: Violations = [];
  checkId(out, 'id', req.id);
  const to = checkTime(out, 'frozen_time', req.frozenTime, true);
  if (out.length > 0 || !to) throw invalidArgument('the advance is not valid', out);
  return { id: req.id, to };
}

/** Validates ListTestClocks (it has no filters). */
export function validateListTestClocks(req: ListTestClocksRequest): ListInput<Record<string, never>> {
  return { filters: {}, page: readPageRequest(req.pageSize, req.pageToken, {}) };
}

// ---- terms against a plan version (checked by the use cases) ----

/**
 * Refuses the first of `items` (seat quantities or contract prices, at `field`) naming a charge `version` does not
 * have: CHARGE_NOT_FOUND, as a plan or an add-on the catalog does not have is NOT_FOUND.
 */
export function requireCharges(version: PlanVersion, field: string, items: readonly { chargeKey: string }[]): void {
  const keys = new Set((version.spec?.charges ?? []).map((c) => c.key));
  const i = items.findIndex((item) => !keys.has(item.chargeKey));
  const unknown = items[i];
  if (unknown) throw chargeNotFound(version.planKey, version.version, unknown.chargeKey, `${field}[${i}].charge_key`);
}

/** Every violation of seat quantities against a plan version. */
export function quantityViolations(quantities: readonly ChargeQuantity[], version: PlanVersion, field: string) {
  const out: Violations = [];
  const seatCharges = new Set(
    (version.spec?.charges ?? []).filter((c) => c.model === PriceModel.PER_SEAT).map((c) => c.key),
  );
  const seen = new Set<string>();
  quantities.forEach((q, i) => {
    if (!seatCharges.has(q.chargeKey)) {
      out.push({
        field: `${field}[${i}].charge_key`,
        description: `${quote(q.chargeKey)} is not a per-seat charge of the plan`,
      });
    }
    if (seen.has(q.chargeKey)) out.push({ field: `${field}[${i}].charge_key`, description: 'listed twice' });
    seen.add(q.chargeKey);
    if (!WHOLE.test(q.quantity)) {
      out.push({ field: `${field}[${i}].quantity`, description: 'a whole number such as "3"' });
    }
  });
  return out;
}

/** Every violation of contract prices against a plan version. */
export function overrideViolations(overrides: readonly PriceOverride[], version: PlanVersion, field: string) {
  const out: Violations = [];
  const charges = new Map((version.spec?.charges ?? []).map((c) => [c.key, c]));
  overrides.forEach((o, i) => {
    const charge = charges.get(o.chargeKey);
    if (!charge) {
      out.push({
        field: `${field}[${i}].charge_key`,
        description: `${quote(o.chargeKey)} is not a charge of the plan`,
      });
      return;
    }
    const tiered = charge.model === PriceModel.TIERED_GRADUATED || charge.model === PriceModel.TIERED_VOLUME;
    if (tiered && o.unitAmount !== '') {
      out.push({ field: `${field}[${i}].unit_amount`, description: 'tiered charges are overridden with tiers' });
    }
    if (!tiered && o.tiers.length > 0) {
      out.push({ field: `${field}[${i}].tiers`, description: 'only tiered charges take tiers' });
    }
    for (const [name, value] of [
      ['unit_amount', o.unitAmount],
      ['included_units', o.includedUnits],
      ['minimum_amount', o.minimumAmount],
      ...o.tiers.flatMap((t, j) => [
        [`tiers[${j}].up_to`, t.upTo],
        [`tiers[${j}].unit_amount`, t.unitAmount],
        [`tiers[${j}].flat_amount`, t.flatAmount],
      ]),
    ] as const) {
      if (value !== '' && !isNonNegativeDecimal(value)) {
        out.push({ field: `${field}[${i}].${name}`, description: 'a non-negative decimal string such as "12.50"' });
      }
    }
  });
  return out;
}

function isNonNegativeDecimal(value: string): boolean {
  try {
    return !parseDecimal(value).isNegative();
  } catch {
    return false;
  }
}
