// Reads and writes of proration item rows.
import type { Em } from '@billing/kit/db';
import { ProrationBilling, type ProrationItem } from '@billing/proto/billing/subscription/v1/resources_pb';
import { ProrationItemRow, UNTRACKED } from './entities.ts';
import { fromDbProrationItem, toDbProrationItem } from './mapping.ts';

/** Inserts proration items of a subscription's period. */
export async function insertProrationItems(em: Em, periodNumber: number, items: readonly ProrationItem[]) {
  if (items.length === 0) return;
  await em.insertMany(
    ProrationItemRow,
    items.map((item) => toDbProrationItem(item, periodNumber)),
  );
}

/** The items of a period carried to its close (NEXT_INVOICE), oldest first. */
export async function itemsCarriedToClose(em: Em, subscriptionId: string, periodNumber: number) {
  const rows = await em.find(
    ProrationItemRow,
    { subscriptionId, periodNumber, billing: String(ProrationBilling.NEXT_INVOICE) },
    { ...UNTRACKED, orderBy: { seq: 'asc' } },
  );
  return rows.map(fromDbProrationItem);
}

/** A page of a subscription's proration items, oldest first. */
export async function listProrationItems(
  em: Em,
  subscriptionId: string,
  page: { size: number; after: string | undefined },
): Promise<{ seq: string; item: ProrationItem }[]> {
  const rows = await em.find(
    ProrationItemRow,
    { subscriptionId, seq: { $gt: page.after ?? '0' } },
    { ...UNTRACKED, orderBy: { seq: 'asc' }, limit: page.size + 1 },
  );
  return rows.map((r) => ({ seq: r.seq, item: fromDbProrationItem(r) }));
}
