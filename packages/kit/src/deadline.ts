// A caller's deadline (`grpc-timeout`, `connect-timeout-ms`), honoured. Connect parses it and aborts the handler
// context's signal when it passes, but the answer still waits for the handler, however long it runs. The deadline
// interceptor answers DEADLINE_EXCEEDED when the deadline passes, and cancels the call's database work: the
// call's deadline signal is kept in async-local storage, where the database client reads it for each statement
// the call sends (db.ts), cancelling the statement in flight and refusing those that come after.
//
// The signal aborts at the deadline only, never when the call ends: work that a call's code starts for others
// (a group commit of several calls' requests) would otherwise be cancelled by the first of them to finish. Such
// work runs `withoutCallDeadline`, so that no single caller's deadline cancels it.

import { AsyncLocalStorage } from 'node:async_hooks';
import { Code, ConnectError, type Interceptor, type StreamResponse } from '@connectrpc/connect';
import type { Logger } from 'pino';

const deadlineSignal = new AsyncLocalStorage<AbortSignal | undefined>();

/** The deadline of the call in progress: a signal aborted with a DEADLINE_EXCEEDED ConnectError when it passes. */
export function callDeadline(): AbortSignal | undefined {
  return deadlineSignal.getStore();
}

/** Runs `work` with `signal` as its deadline: the database work it does is cancelled when `signal` aborts. */
export function withCallDeadline<T>(signal: AbortSignal, work: () => T): T {
  return deadlineSignal.run(signal, work);
}

/** Runs `work` outside any call's deadline: for work shared by several calls, which no one of them may cancel. */
export function withoutCallDeadline<T>(work: () => T): T {
  return deadlineSignal.run(undefined, work);
}

/** True when `reason`, an abort reason of a handler context's signal, is its deadline passing. */
function isDeadline(reason: unknown): reason is ConnectError {
  return reason instanceof ConnectError && reason.code === Code.DeadlineExceeded;
}

/**
 * A stream response's messages, each produced within the call's deadline, ending with the deadline's error when
 * it passes; `done` is called once the stream ends, however it ends.
 */
async function* untilDeadline<T>(
  messages: AsyncIterable<T>,
  signal: AbortSignal,
  expired: Promise<never>,
  done: () => void,
): AsyncGenerator<T> {
  const iterator = withCallDeadline(signal, () => messages[Symbol.asyncIterator]());
  let finished = false;
  try {
    for (;;) {
      const step = await Promise.race([withCallDeadline(signal, () => iterator.next()), expired]);
      if (step.done) {
        finished = true;
        return;
      }
      yield step.value;
    }
  } finally {
    done();
    // A stream left early (the deadline, or the client going away) is closed; its pending step is not awaited.
    if (!finished) void Promise.resolve(iterator.return?.()).catch(() => undefined);
  }
}

/**
 * The interceptor that answers DEADLINE_EXCEEDED when the caller's deadline passes and cancels the call's
 * database work. A handler still running then goes on until its work fails or ends; how it ends is logged at
 * debug. Runs inside the error interceptor, which logs the answer.
 */
export function deadlineInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    // The deadline passed before the handler was reached (a request body slower than the deadline): no work.
    if (req.signal.aborted && isDeadline(req.signal.reason)) throw req.signal.reason;
    const deadline = new AbortController();
    let expire: (reason: ConnectError) => void = () => undefined;
    const expired = new Promise<never>((_, reject) => {
      expire = reject;
    });
    // Rejected only when the deadline passes; the race that waits for it handles it, and nothing else must.
    expired.catch(() => undefined);
    const onAbort = () => {
      const reason: unknown = req.signal.reason;
      if (!isDeadline(reason)) return;
      // The answer first, then the cancellation, whose failures reach the handler after the answer is decided.
      expire(reason);
      deadline.abort(reason);
    };
    req.signal.addEventListener('abort', onAbort);
    const stopWatching = () => req.signal.removeEventListener('abort', onAbort);
    const work = withCallDeadline(deadline.signal, () => next(req));
    let streaming = false;
    try {
      const res = await Promise.race([work, expired]);
      if (!res.stream) return res;
      // A streamed answer is produced after this returns: the deadline bounds it until it ends.
      const streamed: StreamResponse = res;
      streaming = true;
      return { ...streamed, message: untilDeadline(streamed.message, deadline.signal, expired, stopWatching) };
    } catch (err) {
      if (deadline.signal.aborted && err === deadline.signal.reason) {
        const method = `${req.service.typeName}/${req.method.name}`;
        work.then(
          () => logger.debug({ method }, 'call answered at its deadline finished afterwards'),
          (late: unknown) => logger.debug({ method, err: late }, 'call answered at its deadline failed afterwards'),
        );
      }
      throw err;
    } finally {
      if (!streaming) stopWatching();
    }
  };
}
