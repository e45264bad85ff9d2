// What invoicing's payment outcomes do to subscriptions (S10), through the use cases that own those changes: a
// failed payment makes them past due (entitled until the grace end), a payment that settles the invoice makes
// them active again, and an invoice given up on ends them. Each runs in the consumer's transaction, at the
// event's time, with the event's id as its request.
import { type ConsumerSpec, on } from '@billing/kit/consumer';
import type { Em } from '@billing/kit/db';
import type { EventEnvelope } from '@billing/kit/events';
import { InvoiceStatus } from '@billing/proto/billing/invoicing/v1/resources_pb';
import { invoiceMarkedUncollectible, paymentFailed, paymentSucceeded } from '@billing/proto/events/invoicing';
import type { WriteContext } from '../service/context.ts';
import { endUncollectible } from '../service/end-uncollectible.ts';
import { markPastDue } from '../service/mark-past-due.ts';
import { reactivateAfterPayment } from '../service/reactivate-after-payment.ts';

/** The write context of an event's effect: the consumer's transaction, the event's time, its id. */
function eventWrite(em: Em, envelope: EventEnvelope): WriteContext {
  return { em, now: envelope.occurredTime, requestId: envelope.eventId };
}

/** The consumer `subscription-payments` of invoicing's payment outcomes. */
export const paymentOutcomesConsumer: ConsumerSpec = {
  name: 'subscription-payments',
  stream: 'invoicing',
  handlers: [
    on(paymentFailed, (em, { payload, envelope }) =>
      markPastDue(eventWrite(em, envelope), {
        subscriptionIds: payload.subscriptionIds,
        invoiceId: payload.payment?.invoiceId ?? '',
        graceEndTime: payload.graceEndTime,
      }),
    ),
    on(paymentSucceeded, async (em, { payload, envelope }) => {
      if (payload.invoiceStatus !== InvoiceStatus.PAID) return;
      await reactivateAfterPayment(eventWrite(em, envelope), payload.subscriptionIds);
    }),
    on(invoiceMarkedUncollectible, (em, { payload, envelope }) =>
      endUncollectible(eventWrite(em, envelope), payload.invoice?.subscriptionIds ?? []),
    ),
  ],
};
