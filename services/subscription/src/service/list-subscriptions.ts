import { toPage } from '@billing/kit/pagination';
import { listSubscriptions as listRows } from '../adapter/subscriptions-repository.ts';
import type { SubscriptionRecord } from '../domain/subscription.ts';
import type { ListInput, SubscriptionFilters } from '../domain/validate.ts';
import type { ReadContext } from './context.ts';

/** A page of subscriptions in creation order, by customer, payer, plan, state or scheduled change. */
export async function listSubscriptions(
  ctx: ReadContext,
  input: ListInput<SubscriptionFilters>,
): Promise<{ items: SubscriptionRecord[]; nextPageToken: string }> {
  const rows = await listRows(ctx.em, input.filters, input.page);
  const { items, nextPageToken } = toPage(rows, input.page, (row) => row.seq, input.filters);
  return { items: items.map((row) => row.record), nextPageToken };
}
