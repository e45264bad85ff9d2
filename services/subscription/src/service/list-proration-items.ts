import type { ProrationItem } from '@billing/proto/billing/subscription/v1/resources_pb';
import { listProrationItems as listRows } from '../adapter/proration-items-repository.ts';
import type { ListInput } from '../domain/validate.ts';
import type { ReadContext } from './context.ts';
import { pageOfRows } from './pages.ts';

/** A page of a subscription's proration items, oldest first. */
export async function listProrationItems(
  ctx: ReadContext,
  input: ListInput<{ subscriptionId: string }>,
): Promise<{ items: ProrationItem[]; nextPageToken: string }> {
  return pageOfRows(await listRows(ctx.em, input.filters.subscriptionId, input.page), input, (row) => row.item);
}
