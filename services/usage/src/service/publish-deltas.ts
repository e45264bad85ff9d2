// The delta publisher: every ~250 ms, what ingestion added (recorded in the ingesting transactions, so nothing
// is lost in a crash) becomes one `billing.usage.meter.delta` per customer and meter, carrying each touched
// period's new value and its exact change since the last published value. Values move forward by what was
// added (counts and sums add, max and latest compare); unique counts and corrections recompute the period.
// Several replicas can run it: pending rows are taken with SKIP LOCKED, published values are locked.
import type { Database } from '@billing/kit/db';
import { recordEvent } from '@billing/kit/outbox';
import { Decimal } from '@billing/money';
import type { UsageDelta } from '@billing/proto/billing/usage/v1/resources_pb';
import { UsageDeltaSchema } from '@billing/proto/billing/usage/v1/resources_pb';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { findMeter, lockPublishedValue, savePublishedValue, takePendingDeltas } from '../adapter/usage-store.ts';
import { meterUsageDelta } from '../domain/events.ts';
import { applyIncrement, type PeriodState } from '../domain/period-value.ts';
import { aggregateUsage } from './aggregate-usage.ts';

/** Most pending rows taken per pass. */
const PASS_SIZE = 5_000;

/**
 * Publishes what is pending; returns how many delta messages were recorded. One snapshot for the whole pass
 * (repeatable read): the pending rows taken and the rollups a recompute reads agree on which batches they
 * include, so no batch is counted both in a recompute and again as an increment.
 */
export async function publishDeltas(db: Database, now: Date): Promise<number> {
  return db.transaction(async (em) => {
    const pending = await takePendingDeltas(em, PASS_SIZE);
    const byMeter = new Map<string, typeof pending>();
    for (const p of pending) {
      const key = JSON.stringify([p.customer, p.meterKey]);
      byMeter.set(key, [...(byMeter.get(key) ?? []), p]);
    }
    let messages = 0;
    for (const group of byMeter.values()) {
      const first = group[0];
      if (!first) continue;
      const meter = await findMeter(em, first.meterKey);
      if (!meter) continue;
      const deltas: UsageDelta[] = [];
      let lastIngest = first.lastIngest;
      for (const p of group) {
        if (p.lastIngest > lastIngest) lastIngest = p.lastIngest;
        const key = { customer: p.customer, meterKey: p.meterKey, periodStart: p.period[0] };
        const previous = await lockPublishedValue(em, key);
        let next: PeriodState;
        if (p.increment.recompute) {
          const [total] = await aggregateUsage(em, {
            meter,
            customer: p.customer,
            windows: [p.period],
            groupBy: [],
            filters: [],
          });
          next = { value: total?.value ?? new Decimal(0), eventCount: total?.eventCount ?? 0 };
        } else {
          next = applyIncrement(previous, p.increment);
        }
        await savePublishedValue(em, key, next);
        const before = previous.value ?? new Decimal(0);
        const after = next.value ?? new Decimal(0);
        if (before.equals(after) && previous.eventCount === next.eventCount) continue;
        deltas.push(
          create(UsageDeltaSchema, {
            meterKey: p.meterKey,
            period: { startTime: timestampFromDate(p.period[0]), endTime: timestampFromDate(p.period[1]) },
            delta: after.minus(before).toFixed(),
            value: after.toFixed(),
            eventCountDelta: BigInt(next.eventCount - previous.eventCount),
          }),
        );
      }
      if (deltas.length === 0) continue;
      await recordEvent(
        em,
        meterUsageDelta,
        {
          customerExternalId: first.customer,
          meterKey: first.meterKey,
          deltas,
          lastIngestTime: timestampFromDate(lastIngest),
        },
        { aggregateId: `${first.customer}/${first.meterKey}`, occurredTime: now },
      );
      messages++;
    }
    return messages;
  }, 'repeatable read');
}
