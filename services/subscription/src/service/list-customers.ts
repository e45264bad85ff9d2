import type { Customer } from '@billing/proto/billing/subscription/v1/resources_pb';
import { listCustomers as listRows } from '../adapter/customers-repository.ts';
import type { CustomerFilters, ListInput } from '../domain/validate.ts';
import type { ReadContext } from './context.ts';
import { pageOfRows } from './pages.ts';

/** A page of customers in creation order, by parent, test clock, external ids or text. */
export async function listCustomers(
  ctx: ReadContext,
  input: ListInput<CustomerFilters>,
): Promise<{ items: Customer[]; nextPageToken: string }> {
  return pageOfRows(await listRows(ctx.em, input.filters, input.page), input, (row) => row.customer);
}
