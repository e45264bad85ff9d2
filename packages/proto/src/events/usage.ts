// The events the usage service publishes (subjects per docs/usage.md).

import {
  MeterLateUsageRecordedSchema,
  MeterUsageDeltaSchema,
  UsageEventAmendedSchema,
  UsageEventVoidedSchema,
} from '../../gen/billing/usage/events/v1/events_pb.js';
import { defineEvent } from './define.ts';

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
