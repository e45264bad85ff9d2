// The W3C trace context (`traceparent`) of the work in progress: an RPC's, taken from its request header, or a
// consumed event's, taken from its envelope. Events recorded meanwhile carry it, so a trace follows a request
// through the services its events reach.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Interceptor } from '@connectrpc/connect';

// version-trace id-parent id-flags, lowercase hex; version ff and an all-zero trace or parent id are invalid.
const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;
const current = new AsyncLocalStorage<string | undefined>();

/** The trace context of the work in progress, if any. */
export function currentTraceparent(): string | undefined {
  return current.getStore();
}

/**
 * Runs `work` within the trace context `traceparent`, or within none when it is missing or invalid (work done
 * for several requests at once, like a group commit, belongs to none of them).
 */
export function withTraceparent<T>(traceparent: string | undefined, work: () => T): T {
  return current.run(traceparent !== undefined && TRACEPARENT.test(traceparent) ? traceparent : undefined, work);
}

/**
 * Runs each call within the trace context of its `traceparent` header. (A server-streaming handler's body runs
 * after the interceptor returns, outside it: none is served yet.)
 */
export const traceInterceptor: Interceptor = (next) => (req) =>
  withTraceparent(req.header.get('traceparent') ?? undefined, () => next(req));
