import { eventRecord } from '@billing/kit/outbox';
import {
  CancelMode,
  EndReason,
  ProrationReason,
  SubscriptionSchema,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { subscriptionCanceled, subscriptionCancelScheduled } from '@billing/proto/events/subscription';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { endSubscription } from '../domain/billing-step.ts';
import { assertTransition, isBilled, type SubscriptionChange, transition } from '../domain/subscription.ts';
import { prorationItems, prorationPeriod } from '../domain/terms.ts';
import type { CancelSubscriptionInput } from '../domain/validate.ts';
import type { WriteContext } from './context.ts';
import { requireSubscription } from './lookups.ts';
import { currentLines } from './prorated-changes.ts';
import { loadStepInputs, saveChange, saveStep } from './subscription-writes.ts';

const S = SubscriptionState;

/**
 * Cancels at the period end (resumable until then), or now with or without a prorated credit, closing the
 * period at once. A subscription that has not started simply ends.
 */
export async function cancelSubscription(
  ctx: WriteContext,
  input: CancelSubscriptionInput,
): Promise<SubscriptionChange> {
  const record = await requireSubscription(ctx.em, input.subscriptionId, true);
  const s = record.subscription;
  const now = await clockTime(ctx.em, record.testClockId, ctx.now);
  if (input.mode === CancelMode.PERIOD_END && s.state !== S.PENDING) {
    const before = s.state;
    transition(s, S.CANCELED, 'cancel');
    record.stateBeforeCancel = before;
    s.cancelTime = s.currentPeriod?.endTime;
    s.scheduledChange = undefined;
    await saveChange(ctx, record, now, subscriptionCancelScheduled, { subscription: s, reason: input.reason });
    return { record, prorationItems: [] };
  }
  assertTransition(s, S.ENDED, 'cancel');
  const credits =
    input.mode === CancelMode.IMMEDIATELY_WITH_CREDIT && isBilled(record)
      ? prorationItems(await currentLines(ctx.em, record), [], {
          subscriptionId: s.id,
          currency: s.currencyCode,
          full: prorationPeriod(record),
          reason: ProrationReason.CANCELLATION,
          at: now,
        })
      : [];
  const mode = input.mode === CancelMode.PERIOD_END ? CancelMode.IMMEDIATELY_WITHOUT_CREDIT : input.mode;
  const inputs = await loadStepInputs(ctx, record);
  // The credits are items of the period that closes now, carried to its close after those it had.
  const ended = endSubscription(
    record,
    { customer: inputs.customer, carriedItems: [...inputs.carriedItems, ...credits] },
    now,
    EndReason.CANCELED_IMMEDIATELY,
  );
  const canceled = create(SubscriptionSchema, {
    ...s,
    state: S.ENDED,
    endTime: timestampFromDate(now),
    endReason: EndReason.CANCELED_IMMEDIATELY,
  });
  await saveStep(ctx, {
    ...ended,
    prorationItems: { periodNumber: s.periodNumber, items: credits },
    events: [
      eventRecord(
        subscriptionCanceled,
        { subscription: canceled, mode, prorationItems: credits, reason: input.reason },
        { aggregateId: s.id, occurredTime: now },
      ),
      ...ended.events,
    ],
  });
  return { record: ended.record, prorationItems: credits };
}
