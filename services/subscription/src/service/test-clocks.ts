// Test clocks (S14): frozen times that customers live on, advanced on demand; advancing processes everything
// due on the clock in time order, exactly as the billing clock does on real time.
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@billing/kit/errors';
import { newUlid } from '@billing/kit/ids';
import { recordEvent } from '@billing/kit/outbox';
import type { TestClock } from '@billing/proto/billing/subscription/v1/resources_pb';
import { testClockAdvanced, testClockDeleted } from '@billing/proto/events/subscription';
import { type Timestamp, timestampDate } from '@bufbuild/protobuf/wkt';
import * as store from '../adapter/store.ts';
import { nextDue } from '../domain/subscription.ts';
import { advance } from './billing-clock.ts';
import type { WriteContext } from './context.ts';

/** Whether this deployment allows test clocks (configuration; production never does). */
export interface TestClockPolicy {
  /** True when test clocks may be created. */
  enabled: boolean;
}

function assertEnabled(policy: TestClockPolicy) {
  if (!policy.enabled) {
    throw new FailedPreconditionError('TEST_CLOCKS_DISABLED', 'test clocks are disabled in this deployment');
  }
}

function requiredTime(time: Timestamp | undefined, field: string): Date {
  if (!time) throw new InvalidArgumentError(`${field} is required`, [{ field, description: 'required' }]);
  return timestampDate(time);
}

/** Creates a test clock frozen at a time. */
export async function createTestClock(ctx: WriteContext, policy: TestClockPolicy, name: string, frozen?: Timestamp) {
  assertEnabled(policy);
  if (name.length > 200)
    throw new InvalidArgumentError('name is too long', [{ field: 'name', description: 'at most 200 characters' }]);
  const frozenTime = requiredTime(frozen, 'frozen_time');
  const id = `clk_${newUlid()}`;
  await store.insertTestClock(ctx.em, { id, name, frozenTime, now: ctx.now });
  return requireTestClock(ctx, id);
}

/** The test clock with this id, or NOT_FOUND TEST_CLOCK_NOT_FOUND. */
export async function requireTestClock(ctx: Pick<WriteContext, 'em'>, id: string, lock?: 'nowait'): Promise<TestClock> {
  let clock: TestClock | undefined;
  try {
    clock = await store.findTestClock(ctx.em, id, lock);
  } catch (err) {
    // 55P03: the row is locked by an advance in progress.
    if (String((err as { code?: unknown }).code) === '55P03' || /could not obtain lock/.test(String(err))) {
      throw new FailedPreconditionError('TEST_CLOCK_BUSY', 'the test clock is being advanced');
    }
    throw err;
  }
  if (!clock) throw new NotFoundError('TEST_CLOCK_NOT_FOUND', `no test clock "${id}"`);
  return clock;
}

/** Moves a test clock forward, processing everything due on it in time order; returns the clock. */
export async function advanceTestClock(ctx: WriteContext, policy: TestClockPolicy, id: string, to?: Timestamp) {
  assertEnabled(policy);
  const target = requiredTime(to, 'frozen_time');
  const clock = await requireTestClock(ctx, id, 'nowait');
  const previous = clock.frozenTime ? timestampDate(clock.frozenTime) : target;
  if (target.getTime() < previous.getTime()) {
    throw new InvalidArgumentError('a test clock only moves forward', [
      { field: 'frozen_time', description: "must not be before the clock's current time" },
    ]);
  }
  for (;;) {
    const record = await store.nextDueOnTestClock(ctx.em, id, target);
    const due = record ? nextDue(record) : undefined;
    if (!record || !due) break;
    // The clock reads the step's time while it is processed, so that anything reading it agrees.
    await store.setTestClockTime(ctx.em, id, due);
    await advance(ctx, record, due);
  }
  await store.setTestClockTime(ctx.em, id, target);
  const advanced = await requireTestClock(ctx, id);
  await recordEvent(
    ctx.em,
    testClockAdvanced,
    { testClock: advanced, previousTime: clock.frozenTime },
    { aggregateId: id, occurredTime: target, requestId: ctx.requestId },
  );
  return advanced;
}

/** Deletes a test clock with its customers and their subscriptions. */
export async function deleteTestClock(ctx: WriteContext, id: string) {
  const clock = await requireTestClock(ctx, id, 'nowait');
  const customerIds = await store.deleteTestClock(ctx.em, id);
  await recordEvent(
    ctx.em,
    testClockDeleted,
    { testClockId: id, customerIds },
    {
      aggregateId: id,
      occurredTime: clock.frozenTime ? timestampDate(clock.frozenTime) : ctx.now,
      requestId: ctx.requestId,
    },
  );
}
