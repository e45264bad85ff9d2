// The events the usage service publishes (subjects per docs/usage.md).
import { defineEvent } from '@billing/kit/events';
import {
  MeterLateUsageRecordedSchema,
  MeterUsageDeltaSchema,
  UsageEventAmendedSchema,
  UsageEventVoidedSchema,
} from '@billing/proto/billing/usage/events/v1/events_pb';

/** Usage of a meter changed in open periods (batched). */
export const meterUsageDelta = defineEvent('billing.usage.meter.delta', MeterUsageDeltaSchema);
/** Usage arrived for closed periods. */
export const meterLateUsageRecorded = defineEvent(
  'billing.usage.meter.late_usage_recorded',
  MeterLateUsageRecordedSchema,
);
/** A stored event was amended. */
export const usageEventAmended = defineEvent('billing.usage.event.amended', UsageEventAmendedSchema);
/** A stored event was voided. */
export const usageEventVoided = defineEvent('billing.usage.event.voided', UsageEventVoidedSchema);

// Aggregate ids: one aggregate per customer and meter (deltas, late usage) and one per stored event
// (corrections). Their parts that may hold any character come last, and the kinds differ by prefix, so no
// two aggregates share an id: an event id equal to a meter key once numbered both in one sequence.

/** The aggregate of a customer's usage of a meter (meter keys hold no "/"). */
export const meterUsageAggregate = (customer: string, meterKey: string) => `meter/${meterKey}/${customer}`;

/** The aggregate of a stored event (its id, printable ASCII, encoded so that it holds no "/"). */
export const usageEventAggregate = (customer: string, eventId: string) =>
  `event/${encodeURIComponent(eventId)}/${customer}`;
