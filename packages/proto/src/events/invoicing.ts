// The events the invoicing service publishes (subjects per docs/events.md).

import * as E from '../../gen/billing/invoicing/events/v1/events_pb.js';
import { defineEvent } from './define.ts';

/** A payment succeeded. */
export const paymentSucceeded = defineEvent('billing.invoicing.payment.succeeded', E.PaymentSucceededSchema);
/** A payment failed. */
export const paymentFailed = defineEvent('billing.invoicing.payment.failed', E.PaymentFailedSchema);
/** An invoice was given up on. */
export const invoiceMarkedUncollectible = defineEvent(
  'billing.invoicing.invoice.marked_uncollectible',
  E.InvoiceMarkedUncollectibleSchema,
);
