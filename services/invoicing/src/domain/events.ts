// The events the invoicing service publishes (subjects per docs/events.md). Defined here, with their producer,
// before the service itself exists, so that consumers name them in one place.
import { defineEvent } from '@billing/kit/events';
import * as E from '@billing/proto/billing/invoicing/events/v1/events_pb';

/** A payment succeeded. */
export const paymentSucceeded = defineEvent('billing.invoicing.payment.succeeded', E.PaymentSucceededSchema);
/** A payment failed. */
export const paymentFailed = defineEvent('billing.invoicing.payment.failed', E.PaymentFailedSchema);
/** An invoice was given up on. */
export const invoiceMarkedUncollectible = defineEvent(
  'billing.invoicing.invoice.marked_uncollectible',
  E.InvoiceMarkedUncollectibleSchema,
);
