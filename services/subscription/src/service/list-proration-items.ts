import { toPage } from '@billing/kit/pagination';
import type { ProrationItem } from '@billing/proto/billing/subscription/v1/resources_pb';
import { listProrationItems as listRows } from '../adapter/proration-items-repository.ts';
import type { ListInput } from '../domain/validate.ts';
import type { ReadContext } from './context.ts';

/** A page of a subscription's proration items, oldest first. */
export async function listProrationItems(
  ctx: ReadContext,
  input: ListInput<{ subscriptionId: string }>,
): Promise<{ items: ProrationItem[]; nextPageToken: string }> {
  const rows = await listRows(ctx.em, input.filters.subscriptionId, input.page);
  const { items, nextPageToken } = toPage(rows, input.page, (row) => row.seq, input.filters);
  return { items: items.map((row) => row.item), nextPageToken };
}
