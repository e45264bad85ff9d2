import { toPage } from '@billing/kit/pagination';
import type { Customer } from '@billing/proto/billing/subscription/v1/resources_pb';
import { listCustomers as listRows } from '../adapter/customers-repository.ts';
import type { CustomerFilters, ListInput } from '../domain/validate.ts';
import type { ReadContext } from './context.ts';

/** A page of customers in creation order, by parent, test clock, external ids or text. */
export async function listCustomers(
  ctx: ReadContext,
  input: ListInput<CustomerFilters>,
): Promise<{ items: Customer[]; nextPageToken: string }> {
  const rows = await listRows(ctx.em, input.filters, input.page);
  const { items, nextPageToken } = toPage(rows, input.page, (row) => row.seq, input.filters);
  return { items: items.map((row) => row.customer), nextPageToken };
}
