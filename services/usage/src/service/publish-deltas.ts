// The delta publisher: every ~250 ms, what ingestion appended to the rollup log (deltas per minute and billing
// period, one log row per ingesting transaction, so nothing is lost in a crash) is folded into the rollups and
// becomes one `billing.usage.meter.delta` per customer and meter, carrying each touched
// open period's new value and its exact change since the last published value; changes to closed periods
// (late usage) become one `billing.usage.meter.late_usage_recorded` instead, with the late events' ids.
// Values move forward by what was added (counts and sums add, max and latest compare); unique counts and
// corrections recompute the period. The work is set-wise: a pass reads and writes published values and
// records its events in a handful of statements, however many (customer, meter) pairs it covers. Several
// replicas can run it, one pass at a time (an advisory lock: a replica finding it taken skips its pass).
import type { Database } from '@billing/kit/db';
import { type EventRecord, eventRecord, recordEvents } from '@billing/kit/outbox';
import { Decimal } from '@billing/money';
import type { UsageDelta } from '@billing/proto/billing/usage/v1/resources_pb';
import { meterLateUsageRecorded, meterUsageDelta } from '@billing/proto/events/usage';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { knownPeriods } from '../adapter/billing-period-repository.ts';
import { tryPublisherLock } from '../adapter/locks.ts';
import { findMeters } from '../adapter/meter-repository.ts';
import { pendingRowsWaiting, takePendingChanges } from '../adapter/pending-delta-repository.ts';
import { publishedValues, savePublishedValues } from '../adapter/published-value-repository.ts';
import { foldRollupLog, type LogRange } from '../adapter/rollup-log-repository.ts';
import { meterUsageAggregate } from '../domain/aggregates.ts';
import { usageDeltaMessage } from '../domain/messages.ts';
import { type PendingChange, PendingPeriods } from '../domain/pending-periods.ts';
import {
  applyIncrement,
  type PeriodState,
  type PublishedKey,
  periodKey,
  publishedKeyOf,
  publishedState,
} from '../domain/period-value.ts';
import { BillingCalendar, isLate } from '../domain/periods.ts';
import { MAX_LATE_IDS } from '../domain/rollup.ts';
import { periodTotal } from './aggregate-usage.ts';

/** Most (customer, meter, period)s a pass publishes (it may go over by a statement's worth). */
const PASS_SIZE = 5_000;
/** The same, when recomputes wait for a pass that folds the whole log it sees. */
const RECOMPUTE_PASS_SIZE = 50_000;
/**
 * Most rollup log rows folded per statement (each holds a transaction's entries: up to one per event and meter
 * of 8 batches).
 */
const COMPACTION_BATCH = 32;

interface Outgoing {
  customer: string;
  meterKey: string;
  open: UsageDelta[];
  closed: UsageDelta[];
  lateEventIds: string[];
  lastIngest: Date;
}

/**
 * Adds a delta to a message's list, merged with an earlier one of the same period (applied in order); a calendar
 * month and a subscription period starting together are two periods.
 */
function mergeInto(deltas: UsageDelta[], delta: UsageDelta): void {
  const start = delta.period?.startTime?.seconds;
  const earlier = deltas.find(
    (d) => d.period?.startTime?.seconds === start && d.subscriptionId === delta.subscriptionId,
  );
  if (!earlier) {
    deltas.push(delta);
    return;
  }
  earlier.delta = new Decimal(earlier.delta).plus(delta.delta).toFixed();
  earlier.value = delta.value;
  earlier.eventCountDelta += delta.eventCountDelta;
}

/**
 * Publishes what is pending; returns how many messages were recorded. One snapshot for the whole pass
 * (repeatable read): the pending rows taken and the rollups a recompute reads agree on which batches they
 * include, so no batch is counted both in a recompute and again as an increment.
 */
export async function publishDeltas(db: Database, now: Date): Promise<number> {
  return db.transaction(async (em) => {
    // One pass at a time (replicas skip while another runs): the pass folds the rollup log into the rollups, and
    // turns what it adds into pending period increments, which it publishes with the corrections'.
    if (!(await tryPublisherLock(em))) return 0;
    // The log is folded in statements of COMPACTION_BATCH rows, merged per period as they come, until the pass
    // holds PASS_SIZE periods. A recompute reads the rollups and the log, so recomputes (the pending rows) are
    // taken only by a pass that folded every log row it sees: a row left for a later pass would be counted by
    // the recompute and then again as an increment.
    // Under sustained load a pass of PASS_SIZE may never fold all it sees: when recomputes wait, it goes on (up to
    // RECOMPUTE_PASS_SIZE), so they are not put off for as long as the load lasts.
    const size = (await pendingRowsWaiting(em)) ? RECOMPUTE_PASS_SIZE : PASS_SIZE;
    const merged = new PendingPeriods();
    const range: LogRange = { after: '0' };
    let drained = false;
    while (merged.size < size) {
      const folded = await foldRollupLog(em, COMPACTION_BATCH, range);
      merged.add(folded.increments);
      if (folded.logRows < COMPACTION_BATCH || folded.lastId === undefined) {
        drained = true;
        break;
      }
      range.after = folded.lastId;
    }
    if (drained) merged.add(await takePendingChanges(em, PASS_SIZE));
    const pending = merged.list();
    if (pending.length === 0) return 0;
    const meters = await findMeters(
      em,
      pending.map((p) => p.meterKey),
    );
    const keyOf = (p: PendingChange): PublishedKey => periodKey(p.customer, p.meterKey, p.period);
    const published = await publishedValues(em, pending.map(keyOf));
    // The periods of the customers whose periods are recomputed, from the earliest such period on.
    const recomputed = pending.filter((p) => p.increment.recompute);
    const calendar = new BillingCalendar(
      recomputed.length === 0
        ? []
        : await knownPeriods(
            em,
            recomputed.map((p) => p.customer),
            new Date(Math.min(...recomputed.map((p) => p.period.start.getTime()))),
          ),
    );
    // The state of each period as this pass moves it (a period may come twice: increments, then a correction's
    // recompute), saved once at the end.
    const current = new Map<string, { key: PublishedKey; state: PeriodState }>();
    const stateOf = (p: PendingChange) =>
      current.get(publishedKeyOf(keyOf(p)))?.state ?? publishedState(published, keyOf(p));
    const outgoing = new Map<string, Outgoing>();
    for (const p of pending) {
      const meter = meters.get(p.meterKey);
      if (!meter) continue;
      const previous = stateOf(p);
      let next: PeriodState;
      if (p.increment.recompute) {
        const total = await periodTotal(em, meter, p.customer, p.period, calendar);
        // The latest event is kept too: an increment after the recompute must compare with it.
        next = { value: total.value, eventCount: total.eventCount, latest: total.latest };
      } else {
        next = applyIncrement(previous, p.increment);
      }
      current.set(publishedKeyOf(keyOf(p)), { key: keyOf(p), state: next });
      const before = previous.value ?? new Decimal(0);
      const after = next.value ?? new Decimal(0);
      if (before.equals(after) && previous.eventCount === next.eventCount) continue;
      // A correction of a closed period was announced by the correction itself (usage.event.voided or amended):
      // publishing it again as late usage would bill it twice.
      if (p.correction && isLate(p.period)) continue;
      const pair = JSON.stringify([p.customer, p.meterKey]);
      let out = outgoing.get(pair);
      if (!out) {
        out = {
          customer: p.customer,
          meterKey: p.meterKey,
          open: [],
          closed: [],
          lateEventIds: [],
          lastIngest: p.lastIngest,
        };
        outgoing.set(pair, out);
      }
      if (p.lastIngest > out.lastIngest) out.lastIngest = p.lastIngest;
      const delta = usageDeltaMessage(p.meterKey, p.period, {
        before,
        after,
        eventCountDelta: next.eventCount - previous.eventCount,
      });
      if (isLate(p.period)) {
        out.closed.push(delta);
        out.lateEventIds.push(...p.lateEventIds.slice(0, MAX_LATE_IDS - out.lateEventIds.length));
      } else {
        mergeInto(out.open, delta);
      }
    }
    await savePublishedValues(em, [...current.values()]);
    const records: EventRecord[] = [];
    for (const out of outgoing.values()) {
      const context = { aggregateId: meterUsageAggregate(out.customer, out.meterKey), occurredTime: now };
      if (out.open.length > 0) {
        records.push(
          eventRecord(
            meterUsageDelta,
            {
              customerExternalId: out.customer,
              meterKey: out.meterKey,
              deltas: out.open,
              lastIngestTime: timestampFromDate(out.lastIngest),
            },
            context,
          ),
        );
      }
      if (out.closed.length > 0) {
        records.push(
          eventRecord(
            meterLateUsageRecorded,
            {
              customerExternalId: out.customer,
              meterKey: out.meterKey,
              deltas: out.closed,
              eventIds: out.lateEventIds,
            },
            context,
          ),
        );
      }
    }
    // Every writer of these aggregates (passes and corrections) holds the publisher's lock.
    await recordEvents(em, records, { aggregatesLocked: true });
    return records.length;
  }, 'repeatable read');
}
