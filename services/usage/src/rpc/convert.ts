// Conversions between the UsageService's messages and the use cases' inputs and results. (Requests other than
// ingestion become validated inputs in domain/validate.ts.)
import type { UsageEvent } from '@billing/proto/billing/usage/v1/resources_pb';
import type {
  GetPeriodUsageResponseSchema,
  ListEventsResponseSchema,
  QueryUsageResponseSchema,
} from '@billing/proto/billing/usage/v1/usage_service_pb';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate, timestampMs } from '@bufbuild/protobuf/wkt';
import { storedEventMessage } from '../domain/messages.ts';
import type { SentEvent } from '../domain/usage-event.ts';
import type { PeriodUsage } from '../service/get-period-usage.ts';
import type { EventPage } from '../service/list-events.ts';
import type { UsageBucket } from '../service/query-usage.ts';

/** An event of a request as protobuf-es decoded it, as ingestion takes it (validated there, event by event). */
export function fromProtoUsageEvent(event: UsageEvent): SentEvent {
  return {
    id: event.id,
    customerExternalId: event.customerExternalId,
    type: event.type,
    timeMs: event.eventTime ? timestampMs(event.eventTime) : undefined,
    properties: event.properties ?? {},
  };
}

/** The GetPeriodUsage response of a period's usage, counted up to `asOf`. */
export function toProtoPeriodUsage(
  usage: PeriodUsage,
  asOf: Date,
): MessageInitShape<typeof GetPeriodUsageResponseSchema> {
  return {
    value: usage.value.toFixed(),
    eventCount: BigInt(usage.eventCount),
    lateEventCount: BigInt(usage.lateEventCount),
    asOfTime: timestampFromDate(asOf),
  };
}

/** The QueryUsage response of a query's values, counted up to `asOf`. */
export function toProtoUsageBuckets(
  buckets: readonly UsageBucket[],
  asOf: Date,
): MessageInitShape<typeof QueryUsageResponseSchema> {
  return {
    buckets: buckets.map((bucket) => ({
      window: { startTime: timestampFromDate(bucket.range[0]), endTime: timestampFromDate(bucket.range[1]) },
      group: bucket.group,
      value: bucket.value.toFixed(),
    })),
    asOfTime: timestampFromDate(asOf),
  };
}

/** The ListEvents response of a page of events. */
export function toProtoEventPage(page: EventPage): MessageInitShape<typeof ListEventsResponseSchema> {
  return { events: page.events.map(storedEventMessage), nextPageToken: page.nextPageToken };
}
