import { recordEvent } from '@billing/kit/outbox';
import type { TestClock } from '@billing/proto/billing/subscription/v1/resources_pb';
import { testClockAdvanced } from '@billing/proto/events/subscription';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { nextDueOnTestClock } from '../adapter/subscriptions-repository.ts';
import { setTestClockTime } from '../adapter/test-clocks-repository.ts';
import { invalidArgument } from '../domain/errors.ts';
import type { AdvanceTestClockInput } from '../domain/validate.ts';
import type { WriteContext } from './context.ts';
import { lockRequiredTestClock, requireTestClock } from './lookups.ts';
import { advance, dueBy } from './subscription-writes.ts';
import { assertTestClocksEnabled, type TestClockPolicy } from './test-clock-policy.ts';

/**
 * Moves a test clock forward, processing everything due on it in time order, each step at its own time, exactly
 * as the billing clock does on real time; returns the clock.
 */
export async function advanceTestClock(
  ctx: WriteContext,
  policy: TestClockPolicy,
  input: AdvanceTestClockInput,
): Promise<TestClock> {
  assertTestClocksEnabled(policy);
  const clock = await lockRequiredTestClock(ctx.em, input.id);
  const previous = clock.frozenTime ? timestampDate(clock.frozenTime) : input.to;
  if (input.to.getTime() < previous.getTime()) {
    throw invalidArgument('a test clock only moves forward', [
      { field: 'frozen_time', description: "must not be before the clock's current time" },
    ]);
  }
  for (;;) {
    const record = await nextDueOnTestClock(ctx.em, input.id, input.to);
    if (!record) break;
    const due = await dueBy(ctx, record, input.to);
    if (!due) continue;
    // The clock reads the step's time while it is processed, so that anything reading it agrees.
    await setTestClockTime(ctx.em, input.id, due);
    await advance(ctx, record, due);
  }
  await setTestClockTime(ctx.em, input.id, input.to);
  const advanced = await requireTestClock(ctx.em, input.id);
  await recordEvent(
    ctx.em,
    testClockAdvanced,
    { testClock: advanced, previousTime: clock.frozenTime },
    { aggregateId: input.id, occurredTime: input.to, requestId: ctx.requestId },
  );
  return advanced;
}
