// How use cases write a subscription's changes: loading what a domain step (domain/billing-step.ts) needs and
// saving what it decided with its events, or saving a change with the event that announces it.

import { eventRecord, recordEvents } from '@billing/kit/outbox';
import type { EventType } from '@billing/proto/events/define';
import type { DescMessage, MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { recordPeriodClose } from '../adapter/period-closes-repository.ts';
import { insertProrationItems, itemsCarriedToClose } from '../adapter/proration-items-repository.ts';
import { saveSubscription } from '../adapter/subscriptions-repository.ts';
import { dueStep, type StepInputs, type StepResult } from '../domain/billing-step.ts';
import { nextDue, type SubscriptionRecord } from '../domain/subscription.ts';
import { eventContext, type WriteContext } from './context.ts';
import { requireCustomer, requirePlanVersion } from './lookups.ts';

/** Loads what a step on `record` needs: its customer, its plan versions, the items carried to its period's close. */
export async function loadStepInputs(ctx: WriteContext, record: SubscriptionRecord): Promise<StepInputs> {
  const s = record.subscription;
  const change = s.scheduledChange;
  return {
    customer: await requireCustomer(ctx.em, s.customerId),
    version: await requirePlanVersion(ctx.em, s.planKey, s.planVersion),
    scheduledVersion: change ? await requirePlanVersion(ctx.em, change.planKey, change.planVersion) : undefined,
    carriedItems: await itemsCarriedToClose(ctx.em, s.id, s.periodNumber),
  };
}

/**
 * Saves what a step decided: the close of its period (whose key refuses a second close of the same period), its
 * proration items, the subscription, and its events with the request that caused them.
 */
export async function saveStep(ctx: WriteContext, step: StepResult): Promise<void> {
  const s = step.record.subscription;
  if (step.closedPeriod) await recordPeriodClose(ctx.em, s.id, step.closedPeriod.number, step.closedPeriod.end);
  await insertProrationItems(ctx.em, step.prorationItems.periodNumber, step.prorationItems.items);
  await saveSubscription(ctx.em, step.record);
  await recordEvents(
    ctx.em,
    step.events.map((e) => ({ ...e, context: { ...e.context, requestId: ctx.requestId } })),
  );
}

/** Saves a subscription changed at `at` (on its customer's clock), and records the event that announces it. */
export async function saveChange<Schema extends DescMessage>(
  ctx: WriteContext,
  record: SubscriptionRecord,
  at: Date,
  event: EventType<Schema>,
  payload: MessageInitShape<Schema>,
): Promise<void> {
  await saveChanges(ctx, [{ record, at, payload }], event);
}

/** A subscription changed at `at` (on its customer's clock), with the payload of the event that announces it. */
export interface AnnouncedChange<Schema extends DescMessage> {
  /** The subscription as changed. */
  record: SubscriptionRecord;
  /** When it changed. */
  at: Date;
  /** The event's payload. */
  payload: MessageInitShape<Schema>;
}

/**
 * Saves subscriptions changed alike (a migration's), each at its own time, and records the event announcing each:
 * a statement per subscription and two for all the events.
 */
export async function saveChanges<Schema extends DescMessage>(
  ctx: WriteContext,
  changes: readonly AnnouncedChange<Schema>[],
  event: EventType<Schema>,
): Promise<void> {
  for (const { record, at } of changes) {
    record.subscription.updateTime = timestampFromDate(at);
    await saveSubscription(ctx.em, record);
  }
  await recordEvents(
    ctx.em,
    changes.map(({ record, at, payload }) =>
      eventRecord(event, payload, eventContext(ctx, record.subscription.id, at)),
    ),
  );
}

/**
 * When a subscription a clock found due by `until` is due, or undefined when its row's due time says more than its
 * state does (nothing due, or after `until`): its row is then saved again, which writes the due time its state
 * gives, so that the clock does not find it again for nothing and goes on to the rows after it.
 */
export async function dueBy(ctx: WriteContext, record: SubscriptionRecord, until: Date): Promise<Date | undefined> {
  const due = nextDue(record);
  if (due && due.getTime() <= until.getTime()) return due;
  await saveSubscription(ctx.em, record);
  return undefined;
}

/** Processes the one step due for `record` at `at` (its next due time): loads what it needs, saves what it did. */
export async function advance(ctx: WriteContext, record: SubscriptionRecord, at: Date): Promise<void> {
  await saveStep(ctx, dueStep(record, await loadStepInputs(ctx, record), at));
}
