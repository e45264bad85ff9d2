import { recordEvent } from '@billing/kit/outbox';
import { testClockDeleted } from '@billing/proto/events/subscription';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { deleteTestClock as deleteRows } from '../adapter/test-clocks-repository.ts';
import type { WriteContext } from './context.ts';
import { lockRequiredTestClock } from './lookups.ts';

/** Deletes a test clock with its customers and their subscriptions, and says which customers went. */
export async function deleteTestClock(ctx: WriteContext, id: string): Promise<void> {
  const clock = await lockRequiredTestClock(ctx.em, id);
  const customerIds = await deleteRows(ctx.em, id);
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
