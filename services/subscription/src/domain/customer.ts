// Customers: the organisation-tree rules, and which fields an update names and changes (docs/customers.md).
import {
  type BillingSettings,
  BillingSettingsSchema,
  BillTo,
  type Customer,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { create } from '@bufbuild/protobuf';

/** A tree has at most this many levels below its root: depth 0 (a root) to MAX_DEPTH. */
export const MAX_DEPTH = 4;

/** A settable field of the billing settings. */
export type BillingField = Exclude<keyof BillingSettings, '$typeName' | '$unknown'>;

/** The update-mask paths of the billing settings' fields. */
export const BILLING_PATHS: Readonly<Record<string, BillingField>> = {
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

/** The update-mask paths of the fields that really differ between two versions of a customer. */
export function changedFields(before: Customer, after: Customer): string[] {
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
