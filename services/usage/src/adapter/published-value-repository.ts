// The values a delta publisher pass last published per (customer, meter, billing period)
// (`usage_published_value`), read and written set-wise: a pass reads and saves all its periods in one statement
// each, however many (customer, meter) pairs it covers, which is what keeps a pass cheap at a thousand customers.
// Only a pass or a correction writes them, each holding the publisher's lock, so they take no row locks.
import { type Em, queryBound } from '@billing/kit/db';
import { Decimal } from '@billing/money';
import { type PeriodState, type PublishedKey, type PublishedMove, publishedKeyOf } from '../domain/period-value.ts';
import {
  fromDbPublishedKey,
  fromDbPublishedState,
  type PublishedKeyRow,
  type PublishedValueRow,
  toDbPublishedKey,
} from './mapping.ts';

/** The last published states of `keys`, by publishedKeyOf. */
export async function publishedValues(em: Em, keys: readonly PublishedKey[]): Promise<Map<string, PeriodState>> {
  if (keys.length === 0) return new Map();
  const rows = await queryBound<PublishedValueRow>(
    em,
    `select p.customer_external_id, p.meter_key, p.period_start, p.subscription_id, p.value::text as value,
            p.event_count, p.latest_time, p.latest_event_id
       from usage_published_value p
       join jsonb_array_elements($1::jsonb) k
         on p.customer_external_id = k->>0 and p.meter_key = k->>1 and p.period_start = (k->>2)::timestamptz
        and p.subscription_id = k->>3`,
    [JSON.stringify(keys.map(toDbPublishedKey))],
  );
  return new Map(rows.map((row) => [publishedKeyOf(fromDbPublishedKey(row)), fromDbPublishedState(row)]));
}

/**
 * Moves the published values of closed periods by what a correction announced itself, where one was published;
 * returns the keys (publishedKeyOf) moved. Their recomputes then announce, as late usage, only what the
 * correction did not: late usage folded alongside it.
 */
export async function movePublishedValues(em: Em, moves: readonly PublishedMove[]): Promise<Set<string>> {
  if (moves.length === 0) return new Set();
  const moved = await queryBound<PublishedKeyRow>(
    em,
    `update usage_published_value p
        set value = p.value + (x->>4)::numeric, event_count = p.event_count + (x->>5)::bigint
       from jsonb_array_elements($1::jsonb) x
      where p.customer_external_id = x->>0 and p.meter_key = x->>1 and p.period_start = (x->>2)::timestamptz
        and p.subscription_id = x->>3
     returning p.customer_external_id, p.meter_key, p.period_start, p.subscription_id`,
    [
      JSON.stringify(
        moves.map(({ key, delta, eventCountDelta }) => [...toDbPublishedKey(key), delta.toFixed(), eventCountDelta]),
      ),
    ],
  );
  return new Set(moved.map((row) => publishedKeyOf(fromDbPublishedKey(row))));
}

/** Stores the published states of (customer, meter, period)s, in one statement. */
export async function savePublishedValues(
  em: Em,
  entries: readonly { key: PublishedKey; state: PeriodState }[],
): Promise<void> {
  if (entries.length === 0) return;
  await queryBound(
    em,
    `insert into usage_published_value (customer_external_id, meter_key, period_start, subscription_id, value,
       event_count, latest_time, latest_event_id)
     select x->>0, x->>1, (x->>2)::timestamptz, x->>3, (x->>4)::numeric, (x->>5)::bigint, (x->>6)::timestamptz,
            x->>7
       from jsonb_array_elements($1::jsonb) x
     on conflict (customer_external_id, meter_key, period_start, subscription_id) do update set value = excluded.value,
       event_count = excluded.event_count, latest_time = excluded.latest_time,
       latest_event_id = excluded.latest_event_id`,
    [
      JSON.stringify(
        entries.map(({ key, state }) => [
          ...toDbPublishedKey(key),
          (state.value ?? new Decimal(0)).toFixed(),
          state.eventCount,
          state.latest?.time.toISOString() ?? null,
          state.latest?.id ?? null,
        ]),
      ),
    ],
  );
}
