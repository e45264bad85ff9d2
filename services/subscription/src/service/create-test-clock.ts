import { newUlid } from '@billing/kit/ids';
import type { TestClock } from '@billing/proto/billing/subscription/v1/resources_pb';
import { insertTestClock } from '../adapter/test-clocks-repository.ts';
import type { CreateTestClockInput } from '../domain/validate.ts';
import type { WriteContext } from './context.ts';
import { requireTestClock } from './lookups.ts';
import { assertTestClocksEnabled, type TestClockPolicy } from './test-clock-policy.ts';

/** Creates a test clock frozen at a time. */
export async function createTestClock(
  ctx: WriteContext,
  policy: TestClockPolicy,
  input: CreateTestClockInput,
): Promise<TestClock> {
  assertTestClocksEnabled(policy);
  const id = `clk_${newUlid()}`;
  await insertTestClock(ctx.em, { id, name: input.name, frozenTime: input.frozenTime, now: ctx.now });
  return requireTestClock(ctx.em, id);
}
