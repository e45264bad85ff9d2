// The domain error taxonomy, mapped to Connect codes once, at the edge. Each error has a stable UPPER_SNAKE
// reason (google.rpc.ErrorInfo), a public message for the caller and, apart from it, an internal detail that
// only the logs see; bad input also lists the offending fields (google.rpc.BadRequest), the first of them in
// the message text too. Anything else becomes INTERNAL without leaking its message. Each service declares its
// reasons and error constructors in its `domain/errors.ts`.

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

/** What a domain error may carry besides its reason and public message. */
export interface DomainErrorOptions extends ErrorOptions {
  /** Internal detail for the logs (ids, states, amounts), never sent to the caller. */
  detail?: string;
}

/** The base of every domain error. `message` is public: the caller sees it. */
export abstract class DomainError extends Error {
  /** The Connect code it maps to. */
  abstract readonly code: Code;
  /** Stable machine-readable reason. */
  readonly reason: string;
  /** Internal detail, logged and never sent. */
  readonly detail: string | undefined;

  constructor(reason: string, message: string, options?: DomainErrorOptions) {
    super(message, options);
    this.reason = reason;
    this.detail = options?.detail;
    this.name = new.target.name;
  }
}

const QUOTED_PREFIX = 40;

/**
 * A caller's value as public messages and logs quote it: JSON-quoted, and cut to its first 40 characters
 * (marked with an ellipsis), so a megabyte key never comes back in an answer or fills a log line.
 */
export function quote(value: string): string {
  if (value.length <= QUOTED_PREFIX) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, QUOTED_PREFIX)).slice(0, -1)}…"`;
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

  constructor(message: string, options?: DomainErrorOptions) {
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

/** Throws INVALID_ARGUMENT with `message` listing `violations`, if there are any: the end of every validation. */
export function refuseViolations(violations: readonly FieldViolation[], message: string): void {
  if (violations.length > 0) throw new InvalidArgumentError(message, violations);
}

/** The text a caller reads: the public message, and for bad input its first field violation. */
function publicText(err: DomainError): string {
  if (!(err instanceof InvalidArgumentError)) return err.message;
  const first = err.violations[0];
  if (!first) return err.message;
  const more = err.violations.length > 1 ? ` (and ${err.violations.length - 1} more)` : '';
  return `${err.message}: ${first.field}: ${first.description}${more}`;
}

// What an answer carries at most, so that it stays a few kilobytes even when a request has something wrong in
// each of a hundred thousand elements, or a message or field path holds a caller's value whole. Over gRPC the
// details travel base64-encoded in the trailers, with the message twice: Node's HTTP/2 refuses a header list
// past its frame as a transport error, and gRPC's C-core clients drop trailers past 8 KiB (counted in base64).
// So the violations sent stop where their encoding would pass 4 KiB (about 5.5 KiB in base64); the message
// still counts every violation. The texts cut end with an ellipsis.
const MAX_SENT_VIOLATION_BYTES = 4_096;
const MAX_MESSAGE = 1_000;
const MAX_FIELD = 200;
const MAX_DESCRIPTION = 500;
// The most a violation's encoding adds to its two texts: a tag and a length (at most two bytes, the texts
// being clipped) for each text and for the violation itself.
const VIOLATION_FRAMING_BYTES = 9;

/** `text` cut to `max` characters (and an ellipsis), never between the two halves of a surrogate pair. */
function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = /[\ud800-\udbff]/.test(text.charAt(max - 1)) ? max - 1 : max;
  return `${text.slice(0, end)}…`;
}

/** The violations an answer lists: the first ones, clipped, as many as fit in MAX_SENT_VIOLATION_BYTES. */
function sentViolations(violations: readonly FieldViolation[]): FieldViolation[] {
  const sent: FieldViolation[] = [];
  let bytes = 0;
  for (const v of violations) {
    const field = clip(v.field, MAX_FIELD);
    const description = clip(v.description, MAX_DESCRIPTION);
    bytes += Buffer.byteLength(field) + Buffer.byteLength(description) + VIOLATION_FRAMING_BYTES;
    if (bytes > MAX_SENT_VIOLATION_BYTES) break;
    sent.push({ field, description });
  }
  return sent;
}

/** Converts any error into the ConnectError a caller sees, with ErrorInfo (and BadRequest) details. */
export function toConnectError(err: unknown, domain: string): ConnectError {
  if (err instanceof DomainError) {
    const details: ConstructorParameters<typeof ConnectError>[3] = [
      { desc: ErrorInfoSchema, value: { reason: err.reason, domain } },
    ];
    if (err instanceof InvalidArgumentError) {
      details.push({ desc: BadRequestSchema, value: { fieldViolations: sentViolations(err.violations) } });
    }
    return new ConnectError(clip(publicText(err), MAX_MESSAGE), err.code, undefined, details, err);
  }
  if (err instanceof ConnectError) return err;
  return new ConnectError('internal error', Code.Internal, undefined, [
    { desc: ErrorInfoSchema, value: { reason: 'INTERNAL', domain } },
  ]);
}

// Longest request id logged whole: the longest a request_id may be.
const MAX_LOGGED_REQUEST_ID = 128;

/**
 * The interceptor every service runs outermost: maps errors once (logging unexpected ones with their stack,
 * never returning their message) and logs each call with its outcome and duration.
 */
export function errorInterceptor(domain: string, logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const method = `${req.service.typeName}/${req.method.name}`;
    // The request id of a mutation is its idempotency key; other calls may send one as a header. One longer than
    // any valid id is logged as a quoted prefix.
    const body = req.stream ? undefined : (req.message as { requestId?: unknown });
    const sent = (typeof body?.requestId === 'string' && body.requestId) || req.header.get('x-request-id') || undefined;
    const requestId = sent && sent.length > MAX_LOGGED_REQUEST_ID ? quote(sent) : sent;
    const log = logger.child({ method, requestId });
    try {
      const res = await next(req);
      log.debug({ code: 'ok', ms: Math.round(performance.now() - started) }, 'rpc');
      return res;
    } catch (err) {
      const mapped = toConnectError(err, domain);
      const ms = Math.round(performance.now() - started);
      if (mapped.code === Code.Internal) log.error({ err, ms }, 'rpc failed unexpectedly');
      else {
        const domainError = err instanceof DomainError ? err : undefined;
        const refusal = { reason: domainError?.reason, message: mapped.rawMessage, detail: domainError?.detail };
        log.info({ code: Code[mapped.code], ...refusal, ms }, 'rpc refused');
      }
      throw mapped;
    }
  };
}
