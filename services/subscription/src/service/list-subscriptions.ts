import { listSubscriptions as listRows } from '../adapter/subscriptions-repository.ts';
import type { SubscriptionRecord } from '../domain/subscription.ts';
import type { ListInput, SubscriptionFilters } from '../domain/validate.ts';
import type { ReadContext } from './context.ts';
import { pageOfRows } from './pages.ts';

/** A page of subscriptions in creation order, by customer, payer, plan, state or scheduled change. */
export async function listSubscriptions(
  ctx: ReadContext,
  input: ListInput<SubscriptionFilters>,
): Promise<{ items: SubscriptionRecord[]; nextPageToken: string }> {
  return pageOfRows(await listRows(ctx.em, input.filters, input.page), input, (row) => row.record);
}
