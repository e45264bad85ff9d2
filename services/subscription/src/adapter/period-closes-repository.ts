// Writes of period close rows: the exactly-once key of every period close.
import type { Em } from '@billing/kit/db';
import { PeriodCloseRow } from './entities.ts';

/** Records that a period closed; throws if it was closed before (the key is the subscription and period). */
export async function recordPeriodClose(em: Em, subscriptionId: string, periodNumber: number, at: Date) {
  await em.insert(PeriodCloseRow, { subscriptionId, periodNumber, closedAt: at });
}
