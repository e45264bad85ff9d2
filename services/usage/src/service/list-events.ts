// ListEvents: a page of a customer's raw events, newest event time first, filtered by type, by range, or by what
// a meter selects, so an invoice's usage line can be traced back to its events.
import type { Em } from '@billing/kit/db';
import { toPage } from '@billing/kit/pagination';
import { listStoredEvents } from '../adapter/usage-event-repository.ts';
import type { StoredUsageEvent } from '../domain/usage-event.ts';
import type { ListEventsInput } from '../domain/validate.ts';
import { requireMeter } from './require-meter.ts';

/** A page of events and the token of the next one (empty at the end). */
export interface EventPage {
  /** The events, newest first. */
  events: StoredUsageEvent[];
  /** The next page's token. */
  nextPageToken: string;
}

/** Lists a page of a customer's events; NOT_FOUND for an unknown meter. */
export async function listEvents(em: Em, input: ListEventsInput): Promise<EventPage> {
  const meter = input.meterKey === undefined ? undefined : await requireMeter(em, input.meterKey);
  const rows = await listStoredEvents(em, {
    customer: input.customer,
    type: input.type,
    meter,
    from: input.from,
    to: input.to,
    includeVoided: input.includeVoided,
    after: input.after,
    limit: input.page.size + 1,
  });
  const { items, nextPageToken } = toPage(
    rows,
    input.page,
    (row) => JSON.stringify([row.time.toISOString(), row.id]),
    input.pageFilters,
  );
  return { events: items, nextPageToken };
}
