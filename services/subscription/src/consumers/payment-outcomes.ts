// What invoicing's payment outcomes do to subscriptions (S10): a failed payment makes them past due (kept
// entitled until the grace end), a payment that settles the invoice makes them active again, and an invoice
// given up on ends them. Each handler runs in the consumer's transaction, with the event's time.

import { type ConsumerSpec, on } from '@billing/kit/consumer';
import type { Em } from '@billing/kit/db';
import { recordEvent } from '@billing/kit/outbox';
import { InvoiceStatus } from '@billing/proto/billing/invoicing/v1/resources_pb';
import { EndReason, SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import { invoiceMarkedUncollectible, paymentFailed, paymentSucceeded } from '@billing/proto/events/invoicing';
import { subscriptionActivated, subscriptionPastDue } from '@billing/proto/events/subscription';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import * as store from '../adapter/store.ts';
import type { SubscriptionRecord } from '../domain/subscription.ts';
import { endNow } from '../service/billing-clock.ts';
import type { WriteContext } from '../service/context.ts';

const S = SubscriptionState;

async function each(em: Em, ids: readonly string[], work: (record: SubscriptionRecord) => Promise<void>) {
  for (const id of [...new Set(ids)].sort()) {
    const record = await store.findSubscription(em, id, true);
    if (record) await work(record);
  }
}

/** The consumer `subscription-payments` of invoicing's payment outcomes. */
export const paymentOutcomesConsumer: ConsumerSpec = {
  name: 'subscription-payments',
  stream: 'invoicing',
  handlers: [
    on(paymentFailed, async (em, { payload, envelope }) => {
      const at = envelope.occurredTime;
      const ctx: WriteContext = { em, now: at, requestId: envelope.eventId };
      await each(em, payload.subscriptionIds, async (record) => {
        const s = record.subscription;
        if (s.state !== S.ACTIVE) return;
        s.state = S.PAST_DUE;
        s.pastDueTime = timestampFromDate(at);
        s.updateTime = timestampFromDate(at);
        await store.saveSubscription(em, record);
        await recordEvent(
          em,
          subscriptionPastDue,
          { subscription: s, invoiceId: payload.payment?.invoiceId ?? '', graceEndTime: payload.graceEndTime },
          { aggregateId: s.id, occurredTime: at, requestId: ctx.requestId },
        );
      });
    }),
    on(paymentSucceeded, async (em, { payload, envelope }) => {
      if (payload.invoiceStatus !== InvoiceStatus.PAID) return;
      const at = envelope.occurredTime;
      await each(em, payload.subscriptionIds, async (record) => {
        const s = record.subscription;
        const resumesTo = s.state === S.CANCELED && record.stateBeforeCancel === S.PAST_DUE;
        if (s.state !== S.PAST_DUE && !resumesTo) return;
        if (resumesTo) record.stateBeforeCancel = S.ACTIVE;
        else s.state = S.ACTIVE;
        s.pastDueTime = undefined;
        s.updateTime = timestampFromDate(at);
        await store.saveSubscription(em, record);
        if (!resumesTo) {
          await recordEvent(
            em,
            subscriptionActivated,
            { subscription: s, previousState: S.PAST_DUE },
            { aggregateId: s.id, occurredTime: at, requestId: envelope.eventId },
          );
        }
      });
    }),
    on(invoiceMarkedUncollectible, async (em, { payload, envelope }) => {
      const at = envelope.occurredTime;
      const ctx: WriteContext = { em, now: at, requestId: envelope.eventId };
      await each(em, payload.invoice?.subscriptionIds ?? [], async (record) => {
        if (record.subscription.state === S.ENDED) return;
        await endNow(ctx, record, at, EndReason.UNCOLLECTIBLE);
      });
    }),
  ],
};
