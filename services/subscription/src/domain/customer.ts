// Customers: validation of what callers send, and the organisation-tree rules (docs/customers.md).
import { type FieldViolation, InvalidArgumentError } from '@billing/kit/errors';
import { isTimeZone } from '@billing/kit/time-zone';
import { isCurrencyCode } from '@billing/money';
import {
  type BillingSettings,
  BillTo,
  type Customer,
  PaymentTerms,
} from '@billing/proto/billing/subscription/v1/resources_pb';

/** A tree has at most this many levels: depth 0 (a root) to MAX_DEPTH. */
export const MAX_DEPTH = 4;
/** Longest external id. */
export const MAX_EXTERNAL_ID = 128;
const MAX_NAME = 200;
const MAX_SHORT_TEXT = 64;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Checks free-form labels: at most 50 entries, keys up to 40 characters, values up to 500. */
export function checkMetadata(out: FieldViolation[], field: string, metadata: Record<string, string>): void {
  const entries = Object.entries(metadata);
  if (entries.length > 50) out.push({ field, description: 'at most 50 entries' });
  for (const [key, value] of entries) {
    if (key.length === 0 || key.length > 40)
      out.push({ field: `${field}[${key}]`, description: 'keys are 1-40 characters' });
    if (value.length > 500) out.push({ field: `${field}[${key}]`, description: 'values are at most 500 characters' });
  }
}

/** Every violation of the billing settings, with field paths under `prefix`. */
export function billingViolations(billing: BillingSettings | undefined, prefix: string): FieldViolation[] {
  const out: FieldViolation[] = [];
  if (!billing) return out;
  const field = (name: string) => `${prefix}.${name}`;
  if (billing.currencyCode !== '' && !isCurrencyCode(billing.currencyCode)) {
    out.push({ field: field('currency_code'), description: 'must be an ISO 4217 code such as "USD"' });
  }
  if (billing.timeZone !== '' && !isTimeZone(billing.timeZone)) {
    out.push({ field: field('time_zone'), description: 'must be an IANA time zone such as "Europe/Berlin"' });
  }
  if (!(billing.paymentTerms in PaymentTerms))
    out.push({ field: field('payment_terms'), description: 'unknown value' });
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

/** Validates a customer to create; throws INVALID_ARGUMENT naming every bad field. */
export function validateNewCustomer(customer: Customer): void {
  const out: FieldViolation[] = [];
  if (customer.externalId.length === 0 || customer.externalId.length > MAX_EXTERNAL_ID) {
    out.push({ field: 'customer.external_id', description: `required, 1-${MAX_EXTERNAL_ID} characters` });
  }
  if (customer.name.trim() === '' || customer.name.length > MAX_NAME) {
    out.push({ field: 'customer.name', description: `required, at most ${MAX_NAME} characters` });
  }
  out.push(...billingViolations(customer.billing, 'customer.billing'));
  checkMetadata(out, 'customer.metadata', customer.metadata);
  if (!(customer.billTo in BillTo)) out.push({ field: 'customer.bill_to', description: 'unknown value' });
  if (customer.billTo === BillTo.PARENT && customer.parentId === '') {
    out.push({ field: 'customer.bill_to', description: 'BILL_TO_PARENT requires a parent_id' });
  }
  if (out.length > 0) throw new InvalidArgumentError('the customer is not valid', out);
}

/** Validates the name of an update; the other updatable fields are checked as billing settings. */
export function validateCustomerUpdate(customer: Customer, paths: readonly string[]): void {
  const out: FieldViolation[] = [];
  if (paths.includes('name') && (customer.name.trim() === '' || customer.name.length > MAX_NAME)) {
    out.push({ field: 'customer.name', description: `required, at most ${MAX_NAME} characters` });
  }
  out.push(...billingViolations(customer.billing, 'customer.billing'));
  if (paths.includes('metadata')) checkMetadata(out, 'customer.metadata', customer.metadata);
  if (out.length > 0) throw new InvalidArgumentError('the customer update is not valid', out);
}

/** The place of a customer in its tree, derived from its parent's. */
export interface TreePlace {
  /** Ancestors, nearest first. */
  ancestorIds: string[];
  /** Who receives the invoices. */
  payerId: string;
}

/** Where a customer sits under `parent` (undefined for a root) with its own bill_to. */
export function treePlace(
  id: string,
  billTo: BillTo,
  parent: Pick<Customer, 'id' | 'ancestorIds' | 'payerId'> | undefined,
): TreePlace {
  if (!parent) return { ancestorIds: [], payerId: id };
  return {
    ancestorIds: [parent.id, ...parent.ancestorIds],
    payerId: billTo === BillTo.PARENT ? parent.payerId : id,
  };
}
