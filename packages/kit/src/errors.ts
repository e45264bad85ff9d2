// The domain error taxonomy, mapped to Connect codes once, at the edge. Each error has a stable UPPER_SNAKE
// reason (google.rpc.ErrorInfo), a public message for the caller and, apart from it, an internal detail that
// only the logs see; bad input also lists the offending fields (google.rpc.BadRequest), the first of them in
// the message text too. A database that cannot serve the request (unreachable, or past the bound on a statement
// or a lock) is UNAVAILABLE on every path, reads as writes; anything else becomes INTERNAL without leaking its
// message. Each service declares its reasons and error constructors in its `domain/errors.ts`.

import { BadRequestSchema, ErrorInfoSchema } from '@billing/proto/google/rpc/error_details_pb';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import type { Logger } from 'pino';
import type { Outage } from './outage.ts';

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

// Failures that say the database cannot be reached or takes no sessions: the connection was refused, reset or
// ended (a crash, a restart, a network fault), a connection or statement got no answer in time (a frozen
// server), the server is shutting down or starting (57P01-3), a connection exception (class 08), or it has no
// connection slot left (53300). Node's errors and PostgreSQL's carry them as `code`; pg's own connection errors
// only as their message.
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  // The server refuses this service's login (a rotated password, a role or database not there yet): it cannot be
  // used until that is fixed, and a start waits for it as for a server that is down.
  '28000',
  '28P01',
  '3D000',
]);
const UNREACHABLE_MESSAGE =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable)/;
// Failures of a database that answers, but not within the bounds set on each session: a statement cancelled
// (57014: statement_timeout, or pg_cancel_backend) or a lock not obtained (55P03: lock_timeout, NOWAIT); and
// of a pool already closed (a call that arrives while the process stops).
const UNAVAILABLE_CODES = new Set(['57014', '55P03']);
const UNAVAILABLE_MESSAGE = /^(Cannot use a pool after calling end on the pool|driver has already been destroyed)/;

/** An error as far as its classification needs: errors of another realm (a VM context) are no `instanceof Error`. */
interface ErrorLike {
  message: string;
  code?: unknown;
  cause?: unknown;
  errors?: unknown;
}

function isErrorLike(err: unknown): err is ErrorLike {
  return typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string';
}

/** `err`, and the errors it was caused by or aggregates, nearest first (a few levels: wrappers are shallow). */
function* causes(err: unknown, depth = 0): Generator<ErrorLike> {
  // A ConnectError is another service's answer (or its transport's failure): what caused it is that
  // dependency's, never the database's.
  if (!isErrorLike(err) || depth > 4 || err instanceof ConnectError) return;
  yield err;
  yield* causes(err.cause, depth + 1);
  if (Array.isArray(err.errors)) for (const inner of err.errors) yield* causes(inner, depth + 1);
}

function hasCode(err: ErrorLike, codes: ReadonlySet<string>): boolean {
  return typeof err.code === 'string' && codes.has(err.code);
}

/** True when `err` (or what caused it) says the database cannot be reached: a dependency outage. */
export function isDatabaseUnreachable(err: unknown): boolean {
  for (const e of causes(err)) {
    if (hasCode(e, UNREACHABLE_CODES) || UNREACHABLE_MESSAGE.test(e.message)) return true;
    if (typeof e.code === 'string' && /^08[0-9A-Z]{3}$/.test(e.code)) return true;
  }
  return false;
}

/**
 * True when `err` (or what caused it) means the database cannot serve the request now, through no fault of the
 * request: unreachable, or past a bound on a statement or a lock. Callers get UNAVAILABLE and may retry.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (isDatabaseUnreachable(err)) return true;
  for (const e of causes(err)) {
    if (hasCode(e, UNAVAILABLE_CODES) || UNAVAILABLE_MESSAGE.test(e.message)) return true;
  }
  return false;
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
  if (isDatabaseUnavailable(err)) {
    return new ConnectError('the database is unavailable; retry later', Code.Unavailable, undefined, [
      { desc: ErrorInfoSchema, value: { reason: 'UNAVAILABLE', domain } },
    ]);
  }
  return new ConnectError('internal error', Code.Internal, undefined, [
    { desc: ErrorInfoSchema, value: { reason: 'INTERNAL', domain } },
  ]);
}

// Longest request id logged whole: the longest a request_id may be.
const MAX_LOGGED_REQUEST_ID = 128;

/** What the error interceptor needs besides its domain and logger. */
export interface ErrorInterceptorOptions {
  /**
   * The database's outage state (`Database.outage`). Calls failed by an unreachable database are counted in it
   * and logged at debug, the outage itself once when it starts and once when it ends; without it, each such call
   * is logged as a refusal.
   */
  outage?: Outage;
}

/**
 * The interceptor every service runs outermost: maps errors once (logging unexpected ones with their stack,
 * never returning their message) and logs each call with its outcome and duration.
 */
export function errorInterceptor(domain: string, logger: Logger, options: ErrorInterceptorOptions = {}): Interceptor {
  const { outage } = options;
  return (next) => async (req) => {
    const started = performance.now();
    const method = `${req.service.typeName}/${req.method.name}`;
    // The request id of a mutation is its idempotency key; other calls may send one as a header. One longer than
    // any valid id is logged as a quoted prefix.
    const body = req.stream ? undefined : (req.message as { requestId?: unknown });
    const sent = (typeof body?.requestId === 'string' && body.requestId) || req.header.get('x-request-id') || undefined;
    const requestId = sent && sent.length > MAX_LOGGED_REQUEST_ID ? quote(sent) : sent;
    const log = logger.child({ method, requestId });
    const refuse = (err: unknown): ConnectError => {
      const mapped = toConnectError(err, domain);
      const ms = Math.round(performance.now() - started);
      // A call failed by a database outage, or past its deadline while one lasts, is the outage's to report.
      const outageFailure =
        outage !== undefined &&
        (isDatabaseUnreachable(err) || (mapped.code === Code.DeadlineExceeded && outage.ongoing));
      if (mapped.code === Code.Internal) log.error({ err, ms }, 'rpc failed unexpectedly');
      else if (outageFailure) {
        outage.callFailed(err, started);
        log.debug({ code: Code[mapped.code], message: mapped.rawMessage, ms }, 'rpc failed by a database outage');
      } else if (err instanceof DomainError) {
        const refusal = { reason: err.reason, message: mapped.rawMessage, detail: err.detail };
        log.info({ code: Code[mapped.code], ...refusal, ms }, 'rpc refused');
      } else {
        // The transport's own answers (a message that cannot be decoded, a deadline): debug only.
        log.debug({ code: Code[mapped.code], message: mapped.rawMessage, ms }, 'rpc refused by the protocol');
      }
      return mapped;
    };
    try {
      const res = await next(req);
      log.debug({ code: 'ok', ms: Math.round(performance.now() - started) }, 'rpc');
      // A streamed answer fails, if it does, while its messages are produced: it is mapped alike.
      return res.stream ? { ...res, message: mappingFailures(res.message, refuse) } : res;
    } catch (err) {
      throw refuse(err);
    }
  };
}

/** `messages`, with the failure that ends them, if any, mapped by `refuse`. */
async function* mappingFailures<T>(
  messages: AsyncIterable<T>,
  refuse: (err: unknown) => ConnectError,
): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (err) {
    throw refuse(err);
  }
}
