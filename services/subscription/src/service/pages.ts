// Pages of lists in creation order: every list reads `size + 1` rows after its cursor, keyed by their `seq`.
import { toPage } from '@billing/kit/pagination';
import type { ListInput } from '../domain/validate.ts';

/** A page of items from the rows read for `input`, with the token of the next page (empty at the end). */
export function pageOfRows<Row extends { seq: string }, Item>(
  rows: readonly Row[],
  input: ListInput<unknown>,
  item: (row: Row) => Item,
): { items: Item[]; nextPageToken: string } {
  const { items, nextPageToken } = toPage(rows, input.page, (row) => row.seq, input.filters);
  return { items: items.map(item), nextPageToken };
}
