// What the subscription use cases receive.
import type { Em } from '@billing/kit/db';
import type { MutationScope } from '@billing/kit/mutation';

/** A write in progress: its transaction, the service clock's time and the request that caused it. */
export type WriteContext = MutationScope;

/** A read: an entity manager of its own and the service clock's time. */
export interface ReadContext {
  /** The entity manager. */
  em: Em;
  /** The time of the read, from the service clock. */
  now: Date;
}

/** The outbox context of an event about `aggregateId` at `time` (the customer's clock), written within `ctx`. */
export function eventContext(ctx: WriteContext, aggregateId: string, time: Date) {
  return { aggregateId, occurredTime: time, requestId: ctx.requestId };
}
