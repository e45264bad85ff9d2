// The domain error taxonomy, mapped to Connect codes once, at the edge. Each error has a stable UPPER_SNAKE
// reason (google.rpc.ErrorInfo) and a public message; bad input also lists the offending fields
// (google.rpc.BadRequest). Anything else becomes INTERNAL without leaking its message.

import { BadRequestSchema, ErrorInfoSchema } from '@billing/proto/google/rpc/error_details_pb';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import type { Logger } from 'pino';

/** One offending field of a request: its proto path and what is wrong with it. */
export interface FieldViolation {
  /** Proto field path, e.g. `spec.charges[0].prices[1].tiers`. */
  field: string;
  /** What is wrong, for a human. */
  description: string;
}

/** The base of every domain error. */
export abstract class DomainError extends Error {
  /** The Connect code it maps to. */
  abstract readonly code: Code;
  /** Stable machine-readable reason. */
  readonly reason: string;

  constructor(reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
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

/** The caller may not do this. */
export class PermissionDeniedError extends DomainError {
  readonly code = Code.PermissionDenied;
}

/** The caller did not prove who it is. */
export class UnauthenticatedError extends DomainError {
  readonly code = Code.Unauthenticated;
}

/** A dependency (database, another service) cannot be reached; the caller may retry. */
export class UnavailableError extends DomainError {
  readonly code = Code.Unavailable;

  constructor(message: string, options?: ErrorOptions) {
    super('UNAVAILABLE', message, options);
  }
}

/** The request is malformed; `violations` names every offending field. */
export class InvalidArgumentError extends DomainError {
  readonly code = Code.InvalidArgument;
  /** The offending fields. */
  readonly violations: readonly FieldViolation[];

  constructor(message: string, violations: readonly FieldViolation[], reason = 'INVALID_ARGUMENT') {
    super(reason, message);
    this.violations = violations;
  }
}

/** Converts any error into the ConnectError a caller sees, with ErrorInfo (and BadRequest) details. */
export function toConnectError(err: unknown, domain: string): ConnectError {
  if (err instanceof DomainError) {
    const details: ConstructorParameters<typeof ConnectError>[3] = [
      { desc: ErrorInfoSchema, value: { reason: err.reason, domain } },
    ];
    if (err instanceof InvalidArgumentError) {
      details.push({ desc: BadRequestSchema, value: { fieldViolations: err.violations.map((v) => ({ ...v })) } });
    }
    return new ConnectError(err.message, err.code, undefined, details, err);
  }
  if (err instanceof ConnectError) return err;
  return new ConnectError('internal error', Code.Internal, undefined, [
    { desc: ErrorInfoSchema, value: { reason: 'INTERNAL', domain } },
  ]);
}

/**
 * The interceptor every service runs outermost: maps errors once (logging unexpected ones with their stack,
 * never returning their message) and logs each call with its outcome and duration.
 */
export function errorInterceptor(domain: string, logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const method = `${req.service.typeName}/${req.method.name}`;
    // The request id of a mutation is its idempotency key; other calls may send one as a header.
    const body = req.stream ? undefined : (req.message as { requestId?: unknown });
    const requestId =
      (typeof body?.requestId === 'string' && body.requestId) || req.header.get('x-request-id') || undefined;
    const log = logger.child({ method, requestId });
    try {
      const res = await next(req);
      log.debug({ code: 'ok', ms: Math.round(performance.now() - started) }, 'rpc');
      return res;
    } catch (err) {
      const mapped = toConnectError(err, domain);
      const ms = Math.round(performance.now() - started);
      if (mapped.code === Code.Internal) log.error({ err, ms }, 'rpc failed unexpectedly');
      else log.info({ code: Code[mapped.code], reason: mapped.message, ms }, 'rpc refused');
      throw mapped;
    }
  };
}
