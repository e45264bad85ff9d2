// The delta publisher: every ~250 ms, what ingestion touched (recorded in the ingesting transactions, so
// nothing is lost in a crash) becomes one `billing.usage.meter.delta` per customer and meter, carrying each
// touched period's new value and its exact change since the last published value (exact for max, latest and
// unique counts too). Several replicas can run it: pending rows are taken with SKIP LOCKED.
import type { Database } from '@billing/kit/db';
import { recordEvent } from '@billing/kit/outbox';
import { Decimal } from '@billing/money';
import type { UsageDelta } from '@billing/proto/billing/usage/v1/resources_pb';
import { UsageDeltaSchema } from '@billing/proto/billing/usage/v1/resources_pb';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { findMeter, swapPublishedValue, takePendingDeltas } from '../adapter/usage-store.ts';
import { meterUsageDelta } from '../domain/events.ts';
import { aggregateUsage } from './aggregate-usage.ts';

/** Most pending rows taken per pass. */
const PASS_SIZE = 5_000;

/** Publishes what is pending; returns how many delta messages were recorded. */
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
        const [total] = await aggregateUsage(em, {
          meter,
          customer: p.customer,
          windows: [p.period],
          groupBy: [],
          filters: [],
        });
        const value = total?.value.toFixed() ?? '0';
        const eventCount = total?.eventCount ?? 0;
        const previous = await swapPublishedValue(
          em,
          { customer: p.customer, meterKey: p.meterKey, periodStart: p.period[0] },
          { value, eventCount },
        );
        if (previous.value === value && previous.eventCount === eventCount) continue;
        deltas.push(
          create(UsageDeltaSchema, {
            meterKey: p.meterKey,
            period: { startTime: timestampFromDate(p.period[0]), endTime: timestampFromDate(p.period[1]) },
            delta: new Decimal(value).minus(previous.value).toFixed(),
            value,
            eventCountDelta: BigInt(eventCount - previous.eventCount),
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
  });
}
