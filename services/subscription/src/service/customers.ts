// Customer use cases: create, update, and move in the organisation tree (docs/customers.md).
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@billing/kit/errors';
import { newUlid } from '@billing/kit/ids';
import { recordEvent } from '@billing/kit/outbox';
import {
  type BillingSettings,
  BillingSettingsSchema,
  BillTo,
  type Customer,
  CustomerSchema,
  PaymentTerms,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { customerCreated, customerTreeChanged, customerUpdated } from '@billing/proto/events/subscription';
import { clone, create, equals } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import * as store from '../adapter/store.ts';
import { MAX_DEPTH, treePlace, validateCustomerUpdate, validateNewCustomer } from '../domain/customer.ts';
import { eventContext, type WriteContext } from './context.ts';

/** The customer with this id, or NOT_FOUND CUSTOMER_NOT_FOUND. */
export async function requireCustomer(ctx: Pick<WriteContext, 'em'>, id: string, lock = false): Promise<Customer> {
  const customer = await store.findCustomer(ctx.em, id, lock);
  if (!customer) throw new NotFoundError('CUSTOMER_NOT_FOUND', `no customer "${id}"`);
  return customer;
}

/** Creates a customer, under a parent and on a test clock when asked. */
export async function createCustomer(ctx: WriteContext, input: Customer): Promise<Customer> {
  validateNewCustomer(input);
  if (input.testClockId && !(await store.findTestClock(ctx.em, input.testClockId))) {
    throw new NotFoundError('TEST_CLOCK_NOT_FOUND', `no test clock "${input.testClockId}"`);
  }
  const parent = input.parentId ? await requireCustomer(ctx, input.parentId) : undefined;
  if (parent && parent.testClockId !== input.testClockId) {
    throw new FailedPreconditionError('TEST_CLOCK_MISMATCH', 'a child lives on the same test clock as its parent');
  }
  if (parent && parent.ancestorIds.length + 1 > MAX_DEPTH) {
    throw new FailedPreconditionError('TREE_TOO_DEEP', `organisation trees have at most ${MAX_DEPTH + 1} levels`);
  }
  const now = await store.clockTime(ctx.em, input.testClockId, ctx.now);
  const id = `cus_${newUlid()}`;
  const billTo = input.billTo === BillTo.PARENT ? BillTo.PARENT : BillTo.SELF;
  const billing = clone(BillingSettingsSchema, input.billing ?? create(BillingSettingsSchema));
  if (billing.paymentTerms === PaymentTerms.UNSPECIFIED) billing.paymentTerms = PaymentTerms.CHARGE_AUTOMATICALLY;
  const customer = create(CustomerSchema, {
    id,
    externalId: input.externalId,
    name: input.name,
    billing,
    parentId: input.parentId,
    billTo,
    ...treePlace(id, billTo, parent),
    testClockId: input.testClockId,
    currencyLocked: false,
    metadata: input.metadata,
    createTime: timestampFromDate(now),
    updateTime: timestampFromDate(now),
  });
  if (!(await store.insertCustomer(ctx.em, customer))) {
    throw new AlreadyExistsError('EXTERNAL_ID_TAKEN', `a customer with external id "${input.externalId}" exists`);
  }
  await recordEvent(ctx.em, customerCreated, { customer }, eventContext(ctx, id, now));
  return customer;
}

/** A settable field of the billing settings. */
type BillingField = Exclude<keyof BillingSettings, '$typeName' | '$unknown'>;

const BILLING_PATHS: Record<string, BillingField> = {
  'billing.currency_code': 'currencyCode',
  'billing.time_zone': 'timeZone',
  'billing.payment_terms': 'paymentTerms',
  'billing.net_days': 'netDays',
  'billing.invoice_email': 'invoiceEmail',
  'billing.tax_country_code': 'taxCountryCode',
  'billing.tax_id': 'taxId',
  'billing.po_number': 'poNumber',
  'billing.stripe_customer_id': 'stripeCustomerId',
};

/** Changes the fields named in `paths`; the currency only until the customer's first subscription. */
export async function updateCustomer(ctx: WriteContext, input: Customer, paths: readonly string[]): Promise<Customer> {
  if (paths.length === 0) {
    throw new InvalidArgumentError('update_mask names no field', [{ field: 'update_mask', description: 'required' }]);
  }
  const bad = paths.filter((p) => !(p in BILLING_PATHS) && !['name', 'metadata', 'billing'].includes(p));
  if (bad.length > 0) {
    throw new InvalidArgumentError(
      `these fields cannot be updated: ${bad.join(', ')}`,
      bad.map((p) => ({ field: 'update_mask', description: `"${p}" cannot be updated here` })),
    );
  }
  const customer = await requireCustomer(ctx, input.id, true);
  const next = clone(CustomerSchema, customer);
  const billing = next.billing ?? create(BillingSettingsSchema);
  next.billing = billing;
  const source = input.billing ?? create(BillingSettingsSchema);
  for (const path of paths) {
    if (path === 'name') next.name = input.name;
    else if (path === 'metadata') next.metadata = { ...input.metadata };
    else if (path === 'billing') next.billing = clone(BillingSettingsSchema, source);
    else {
      const field = BILLING_PATHS[path] as BillingField;
      Object.assign(billing, { [field]: source[field] });
    }
  }
  validateCustomerUpdate(next, paths);
  if (next.billing && next.billing.paymentTerms === PaymentTerms.UNSPECIFIED) {
    next.billing.paymentTerms = PaymentTerms.CHARGE_AUTOMATICALLY;
  }
  const changed = changedFields(customer, next);
  if (changed.includes('billing.currency_code') && customer.currencyLocked) {
    throw new FailedPreconditionError('CURRENCY_LOCKED', 'the currency is fixed once the customer has a subscription');
  }
  if (changed.length === 0) return customer;
  const now = await store.clockTime(ctx.em, customer.testClockId, ctx.now);
  next.updateTime = timestampFromDate(now);
  await store.saveCustomer(ctx.em, next);
  await recordEvent(
    ctx.em,
    customerUpdated,
    { customer: next, changedFields: changed },
    eventContext(ctx, next.id, now),
  );
  return next;
}

function changedFields(before: Customer, after: Customer): string[] {
  const out: string[] = [];
  if (before.name !== after.name) out.push('name');
  const a = before.billing ?? create(BillingSettingsSchema);
  const b = after.billing ?? create(BillingSettingsSchema);
  for (const [path, field] of Object.entries(BILLING_PATHS)) if (a[field] !== b[field]) out.push(path);
  const m1 = before.metadata;
  const m2 = after.metadata;
  const keys = new Set([...Object.keys(m1), ...Object.keys(m2)]);
  if ([...keys].some((k) => m1[k] !== m2[k])) out.push('metadata');
  return out;
}

/** Locks the currency of a customer at its first subscription, setting it if it had none. */
export async function lockCurrency(ctx: WriteContext, customer: Customer, currencyCode: string, now: Date) {
  if (customer.currencyLocked && customer.billing?.currencyCode === currencyCode) return customer;
  const next = clone(CustomerSchema, customer);
  next.billing = clone(BillingSettingsSchema, customer.billing ?? create(BillingSettingsSchema));
  const changed = next.billing.currencyCode !== currencyCode ? ['billing.currency_code'] : [];
  next.billing.currencyCode = currencyCode;
  next.currencyLocked = true;
  next.updateTime = timestampFromDate(now);
  await store.saveCustomer(ctx.em, next);
  if (changed.length > 0) {
    await recordEvent(
      ctx.em,
      customerUpdated,
      { customer: next, changedFields: changed },
      eventContext(ctx, next.id, now),
    );
  }
  return next;
}

/** Moves a customer and its subtree under another parent (or to the root), and sets who pays for it. */
export async function setCustomerParent(
  ctx: WriteContext,
  customerId: string,
  parentId: string,
  billToInput: BillTo,
): Promise<Customer> {
  if (!(billToInput in BillTo)) {
    throw new InvalidArgumentError('bill_to is not valid', [{ field: 'bill_to', description: 'unknown value' }]);
  }
  const billTo = billToInput === BillTo.PARENT ? BillTo.PARENT : BillTo.SELF;
  if (parentId === '' && billTo === BillTo.PARENT) {
    throw new InvalidArgumentError('a root pays for itself', [
      { field: 'bill_to', description: 'BILL_TO_PARENT requires a parent_id' },
    ]);
  }
  // Tree moves are serialised so that two concurrent moves cannot build a cycle between them.
  await ctx.em.execute("select pg_advisory_xact_lock(hashtext('customer-tree'))");
  const customer = await requireCustomer(ctx, customerId, true);
  const tree = await store.subtree(ctx.em, customerId);
  const parent = parentId ? await requireCustomer(ctx, parentId) : undefined;
  if (parent && tree.some((n) => n.customer.id === parent.id)) {
    throw new FailedPreconditionError('TREE_CYCLE', 'a customer cannot move under itself or its descendants');
  }
  if (parent && parent.testClockId !== customer.testClockId) {
    throw new FailedPreconditionError('TEST_CLOCK_MISMATCH', 'a child lives on the same test clock as its parent');
  }
  const height = Math.max(...tree.map((n) => n.depth));
  const depth = parent ? parent.ancestorIds.length + 1 : 0;
  if (depth + height > MAX_DEPTH) {
    throw new FailedPreconditionError('TREE_TOO_DEEP', `organisation trees have at most ${MAX_DEPTH + 1} levels`);
  }
  if (customer.parentId === parentId && customer.billTo === billTo) return customer;
  const now = await store.clockTime(ctx.em, customer.testClockId, ctx.now);
  // Parents before children: each node's place follows from its parent's new place.
  const placed = new Map<string, Customer>();
  for (const { customer: node } of tree) {
    const next = clone(CustomerSchema, node);
    if (node.id === customerId) {
      next.parentId = parentId;
      next.billTo = billTo;
      Object.assign(next, treePlace(node.id, billTo, parent));
      next.updateTime = timestampFromDate(now);
    } else {
      Object.assign(next, treePlace(node.id, node.billTo, placed.get(node.parentId)));
    }
    placed.set(node.id, next);
    if (!equals(CustomerSchema, node, next)) await store.saveCustomer(ctx.em, next);
  }
  const moved = placed.get(customerId) ?? customer;
  await recordEvent(
    ctx.em,
    customerTreeChanged,
    {
      customer: moved,
      previousParentId: customer.parentId,
      previousBillTo: customer.billTo,
      previousPayerId: customer.payerId,
      descendantIds: tree.slice(1).map((n) => n.customer.id),
    },
    eventContext(ctx, customerId, now),
  );
  return moved;
}
