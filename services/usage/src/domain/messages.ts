// The contract messages the usage service's events carry and its answers share: a stored event, and the change
// of a meter's value over a billing period.
import type { Decimal } from '@billing/money';
import {
  type StoredEvent,
  StoredEventSchema,
  type UsageDelta,
  UsageDeltaSchema,
} from '@billing/proto/billing/usage/v1/resources_pb';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { BillingPeriod } from './periods.ts';
import type { CorrectableEvent, StoredUsageEvent } from './usage-event.ts';

/** The StoredEvent message of a stored event (with its correction history, when it was read with it). */
export function storedEventMessage(event: StoredUsageEvent | CorrectableEvent): StoredEvent {
  const history = 'amendmentCount' in event ? event : undefined;
  return create(StoredEventSchema, {
    event: {
      id: event.id,
      customerExternalId: event.customer,
      type: event.type,
      eventTime: timestampFromDate(event.time),
      properties: event.properties,
    },
    ingestTime: timestampFromDate(event.ingestedAt),
    late: event.late,
    voided: event.voided,
    amendmentCount: history?.amendmentCount ?? 0,
    updateTime: history?.updatedAt ? timestampFromDate(history.updatedAt) : undefined,
  });
}

/** How a meter's value over a period changed: from `before` to `after`, with `eventCountDelta` events more. */
export interface ValueChange {
  /** The value before. */
  before: Decimal;
  /** The value after. */
  after: Decimal;
  /** Events added (negative: removed). */
  eventCountDelta: number;
}

/** The UsageDelta message of a change of meter `meterKey` over `period`. */
export function usageDeltaMessage(meterKey: string, period: BillingPeriod, change: ValueChange): UsageDelta {
  return create(UsageDeltaSchema, {
    meterKey,
    period: { startTime: timestampFromDate(period.start), endTime: timestampFromDate(period.end) },
    subscriptionId: period.subscriptionId,
    delta: change.after.minus(change.before).toFixed(),
    value: change.after.toFixed(),
    eventCountDelta: BigInt(change.eventCountDelta),
    periodClosed: period.closed,
  });
}
