// The domain error taxonomy, mapped to Connect codes once, at the edge (AIP-193). Each error has a stable
// UPPER_SNAKE reason (sent as google.rpc.ErrorInfo with the service's domain) and a public message; bad
// input also lists the offending fields (google.rpc.BadRequest). Anything else becomes INTERNAL without
// leaking its message, and is logged with its stack.

import { BadRequestSchema, ErrorInfoSchema } from '@billing/proto/google/rpc/error_details_pb';
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from '@connectrpc/connect';
import { callLoggerKey, type Logger, REQUEST_ID_HEADER, requestIdOf } from './log.ts';

/** One offending field of a request: its path in proto field names, and what is wrong with it. */
export interface FieldViolation {
  /** Proto field path, e.g. `spec.charges[0].prices[1].tiers`. */
  field: string;
  /** What is wrong, for a human. */
  description: string;
}

/** Options of a domain error: an internal cause (logged, never sent) and ErrorInfo metadata (sent). */
export interface DomainErrorOptions extends ErrorOptions {
  /** Facts a client may act on, e.g. `{ plan_key: 'pro' }` (AIP-193 ErrorInfo.metadata). */
  metadata?: Record<string, string>;
}

/** The base of every domain error: a Connect code, a stable reason and a public message. */
export abstract class DomainError extends Error {
  /** The Connect code it maps to. */
  abstract readonly code: Code;
  /** Stable machine-readable reason, UPPER_SNAKE, e.g. `PLAN_NOT_FOUND`. */
  readonly reason: string;
  /** ErrorInfo metadata sent with the error. */
  readonly metadata: Readonly<Record<string, string>>;

  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(message, options);
    this.reason = reason;
    this.metadata = options?.metadata ?? {};
    this.name = new.target.name;
  }
}

/** The object asked for does not exist. */
export class NotFoundError extends DomainError {
  readonly code = Code.NotFound;
}

/** The key is taken, or a request id was reused with other parameters. */
export class AlreadyExistsError extends DomainError {
  readonly code = Code.AlreadyExists;
}

/** The object's state forbids the operation (a published version, an archived plan...). */
export class FailedPreconditionError extends DomainError {
  readonly code = Code.FailedPrecondition;
}

/** The caller is known but may not do this. */
export class PermissionDeniedError extends DomainError {
  readonly code = Code.PermissionDenied;
}

/** The caller did not prove who it is. */
export class UnauthenticatedError extends DomainError {
  readonly code = Code.Unauthenticated;
}

/** A dependency (database, another service) cannot be reached; the caller may retry. Reason UNAVAILABLE. */
export class UnavailableError extends DomainError {
  readonly code = Code.Unavailable;

  constructor(message: string, options?: DomainErrorOptions & { reason?: string }) {
    super(options?.reason ?? 'UNAVAILABLE', message, options);
  }
}

/** The request is malformed; `violations` names every offending field. Reason INVALID_ARGUMENT by default. */
export class InvalidArgumentError extends DomainError {
  readonly code = Code.InvalidArgument;
  /** The offending fields. */
  readonly violations: readonly FieldViolation[];

  constructor(
    message: string,
    violations: readonly FieldViolation[],
    reason = 'INVALID_ARGUMENT',
    options?: DomainErrorOptions,
  ) {
    super(reason, message, options);
    this.violations = violations;
  }
}

/**
 * A field path in proto field names from its parts: strings are fields, numbers are list indexes,
 * e.g. `fieldPath('spec', 'charges', 0, 'prices', 1, 'tiers')` is `spec.charges[0].prices[1].tiers`.
 */
export function fieldPath(...parts: readonly (string | number)[]): string {
  let path = '';
  for (const part of parts) {
    if (typeof part === 'number') path += `[${part}]`;
    else if (part !== '') path += path === '' ? part : `.${part}`;
  }
  return path;
}

/**
 * Collects every field violation of a request, so that one answer names all of them; `throwIfAny` then
 * throws one InvalidArgumentError. `at(path)` gives a collector for a nested message that shares the list
 * and prefixes its fields, so that validation of a sub-message does not need to know where it sits.
 */
export class Violations {
  readonly #list: FieldViolation[];
  readonly #prefix: string;

  constructor(prefix = '', list: FieldViolation[] = []) {
    this.#prefix = prefix;
    this.#list = list;
  }

  /** Records that `field` (relative to this collector's prefix) is wrong. */
  add(field: string | readonly (string | number)[], description: string): this {
    const relative = typeof field === 'string' ? field : fieldPath(...field);
    this.#list.push({ field: fieldPath(this.#prefix, relative), description });
    return this;
  }

  /** A collector for the message at `path` below this one, sharing the same list. */
  at(...path: readonly (string | number)[]): Violations {
    return new Violations(fieldPath(this.#prefix, fieldPath(...path)), this.#list);
  }

  /** Every violation recorded so far (by this collector and those derived from it). */
  get list(): readonly FieldViolation[] {
    return this.#list;
  }

  /** Whether nothing is wrong. */
  get isEmpty(): boolean {
    return this.#list.length === 0;
  }

  /** Throws an InvalidArgumentError listing every violation, if there is any. */
  throwIfAny(message = 'the request is not valid', reason = 'INVALID_ARGUMENT'): void {
    if (this.#list.length > 0) throw new InvalidArgumentError(message, [...this.#list], reason);
  }
}

/** The reason and message every unexpected error is reduced to. */
export const INTERNAL_REASON = 'INTERNAL';

/**
 * Converts any error into the ConnectError a caller sees. A domain error keeps its code, message and reason
 * (ErrorInfo, with `domain`, e.g. `billing.catalog`) and, for bad input, its fields (BadRequest). A
 * ConnectError passes unchanged. Anything else becomes INTERNAL "internal error": its message may hold
 * internals (SQL, hosts, secrets), so it is only ever logged.
 */
export function toConnectError(err: unknown, domain: string): ConnectError {
  if (err instanceof DomainError) {
    const details: ConstructorParameters<typeof ConnectError>[3] = [
      { desc: ErrorInfoSchema, value: { reason: err.reason, domain, metadata: { ...err.metadata } } },
    ];
    if (err instanceof InvalidArgumentError) {
      details.push({
        desc: BadRequestSchema,
        value: { fieldViolations: err.violations.map((v) => ({ field: v.field, description: v.description })) },
      });
    }
    // The domain error is the cause: a server-side interceptor or test may look at it; it is never sent.
    return new ConnectError(err.message, err.code, undefined, details, err);
  }
  if (err instanceof ConnectError) return err;
  return new ConnectError('internal error', Code.Internal, undefined, [
    { desc: ErrorInfoSchema, value: { reason: INTERNAL_REASON, domain } },
  ]);
}

// gRPC's names for codes (NOT_FOUND...), which is how operators search logs.
function codeName(code: Code | 'ok'): string {
  if (code === 'ok') return 'OK';
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
}

// Errors of the caller's making are routine; a dependency down is a warning; a bug is an error.
function levelOf(code: Code): 'info' | 'warn' | 'error' {
  switch (code) {
    case Code.Internal:
    case Code.Unknown:
    case Code.DataLoss:
    case Code.Unimplemented:
      return 'error';
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.ResourceExhausted:
      return 'warn';
    default:
      return 'info';
  }
}

/**
 * The interceptor every service runs outermost. It maps errors once (`toConnectError`), logs each call
 * once with its method, request id, code and duration, logs unexpected errors with their stack, echoes the
 * request id in the `x-request-id` response header, and leaves a per-call logger for handlers
 * (`callLogger(context, fallback)`). Errors of streaming calls, raised while the response stream is read,
 * are mapped and logged the same way.
 */
export function errorInterceptor(domain: string, logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const method = `${req.service.typeName}/${req.method.name}`;
    const requestId = requestIdOf({ message: req.stream ? undefined : req.message, header: req.header });
    const log = logger.child({ request_id: requestId, method });
    req.contextValues.set(callLoggerKey, log);
    const durationMs = () => Math.round((performance.now() - started) * 10) / 10;

    const succeeded = () => {
      // A stream the client walked away from ends without an error on this side.
      const code = req.signal.aborted ? codeName(ConnectError.from(req.signal.reason).code) : codeName('ok');
      log.info({ code, duration_ms: durationMs() }, 'rpc');
    };
    const failed = (err: unknown): ConnectError => {
      // A call the client cancelled or let time out often dies with whatever its dependency threw (an
      // AbortError from a driver): that is the client's doing, not a bug, and is reported as such.
      const abandoned = req.signal.aborted && !(err instanceof DomainError) && !(err instanceof ConnectError);
      const mapped = abandoned ? ConnectError.from(req.signal.reason) : toConnectError(err, domain);
      mapped.metadata.set(REQUEST_ID_HEADER, requestId);
      const fields = {
        code: codeName(mapped.code),
        reason: err instanceof DomainError ? err.reason : undefined,
        duration_ms: durationMs(),
      };
      if (mapped.code === Code.Internal && !(err instanceof ConnectError)) {
        log.error({ ...fields, err }, 'rpc failed unexpectedly');
      } else {
        log[levelOf(mapped.code)]({ ...fields, error: mapped.rawMessage }, 'rpc refused');
      }
      return mapped;
    };

    let res: UnaryResponse | StreamResponse;
    try {
      res = await next(req);
    } catch (err) {
      throw failed(err);
    }
    res.header.set(REQUEST_ID_HEADER, requestId);
    if (!res.stream) {
      succeeded();
      return res;
    }
    return { ...res, message: guardStream(res.message, succeeded, failed) };
  };
}

// A response stream whose end is logged and whose failure is mapped, however it ends.
async function* guardStream<T>(
  stream: AsyncIterable<T>,
  succeeded: () => void,
  failed: (err: unknown) => ConnectError,
): AsyncGenerator<T> {
  let thrown = false;
  try {
    yield* stream;
  } catch (err) {
    thrown = true;
    throw failed(err);
  } finally {
    if (!thrown) succeeded();
  }
}
