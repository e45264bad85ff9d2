// The W3C trace context (`traceparent`) of the work in progress: an RPC's, taken from its request header, or a
// consumed event's, taken from its envelope. Events recorded meanwhile carry it, so a trace follows a request
// through the services its events reach.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Interceptor } from '@connectrpc/connect';

// version-trace id-parent id-flags, lowercase hex; an all-zero trace or parent id is invalid.
const TRACEPARENT = /^[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;
const current = new AsyncLocalStorage<string>();

/** The trace context of the work in progress, if any. */
export function currentTraceparent(): string | undefined {
  return current.getStore();
}

/** Runs `work` within the trace context `traceparent` (ignored unless it is a valid one). */
export function withTraceparent<T>(traceparent: string | undefined, work: () => T): T {
  return traceparent !== undefined && TRACEPARENT.test(traceparent) ? current.run(traceparent, work) : work();
}

/** Runs each call within the trace context of its `traceparent` header. */
export const traceInterceptor: Interceptor = (next) => (req) =>
  withTraceparent(req.header.get('traceparent') ?? undefined, () => next(req));
