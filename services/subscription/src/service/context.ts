// What every subscription use case that writes receives.
import type { MutationScope } from '@billing/kit/mutation';

/** A write in progress: its transaction, the service clock's time and the request that caused it. */
export type WriteContext = MutationScope;

/** The outbox context of an event about `aggregateId` at `time` (the customer's clock), written within `ctx`. */
export function eventContext(ctx: WriteContext, aggregateId: string, time: Date) {
  return { aggregateId, occurredTime: time, requestId: ctx.requestId };
}
