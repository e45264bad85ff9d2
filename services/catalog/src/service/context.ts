// What every catalog use case that writes receives.
import type { Em } from '@billing/kit/db';

/** A write in progress: its transaction, its time and the request that caused it. */
export interface WriteContext {
  /** The transaction. */
  em: Em;
  /** The time of the change, from the service clock. */
  now: Date;
  /** The request_id of the RPC, carried into events. */
  requestId: string;
}

/** The outbox context of an event about `aggregateId`, written within `ctx`. */
export function eventContext(ctx: WriteContext, aggregateId: string) {
  return { aggregateId, occurredTime: ctx.now, requestId: ctx.requestId };
}
