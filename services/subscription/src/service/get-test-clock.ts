import type { TestClock } from '@billing/proto/billing/subscription/v1/resources_pb';
import type { ReadContext } from './context.ts';
import { requireTestClock } from './lookups.ts';

/** The test clock with this id (ADVANCING while an advance holds it), or NOT_FOUND TEST_CLOCK_NOT_FOUND. */
export function getTestClock(ctx: ReadContext, id: string): Promise<TestClock> {
  return requireTestClock(ctx.em, id);
}
