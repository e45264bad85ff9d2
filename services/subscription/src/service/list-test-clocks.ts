import type { TestClock } from '@billing/proto/billing/subscription/v1/resources_pb';
import { listTestClocks as listRows } from '../adapter/test-clocks-repository.ts';
import type { ListInput } from '../domain/validate.ts';
import type { ReadContext } from './context.ts';
import { pageOfRows } from './pages.ts';

/** A page of test clocks in creation order. */
export async function listTestClocks(
  ctx: ReadContext,
  input: ListInput<Record<string, never>>,
): Promise<{ items: TestClock[]; nextPageToken: string }> {
  return pageOfRows(await listRows(ctx.em, input.page), input, (row) => row.clock);
}
