// The usage service's errors: its reasons (google.rpc.ErrorInfo.reason, named in the contract) and one
// constructor per error, which is all the rest of the service calls. Messages are public and quote a caller's
// value with quote(), which cuts it to a short prefix.
import {
  FailedPreconditionError,
  type FieldViolation,
  InvalidArgumentError,
  NotFoundError,
  quote,
} from '@billing/kit/errors';
import { MAX_BATCH_SIZE } from './usage-event.ts';

/** The reasons of the usage service's errors. */
export const UsageReason = {
  /** A batch holds more than MAX_BATCH_SIZE events. */
  BATCH_TOO_LARGE: 'BATCH_TOO_LARGE',
  /** No meter has the key asked for. */
  METER_NOT_FOUND: 'METER_NOT_FOUND',
  /** The customer has no stored event with the id asked for. */
  EVENT_NOT_FOUND: 'EVENT_NOT_FOUND',
  /** The event to correct was voided. */
  EVENT_VOIDED: 'EVENT_VOIDED',
} as const;

/** The message of every refused request of the usage service (its first field violation follows it). */
export const REQUEST_NOT_VALID = 'the request is not valid';

/** The request is not valid: `violations` names every offending field (the first one is in the message too). */
export function invalidRequest(violations: readonly FieldViolation[]): InvalidArgumentError {
  return new InvalidArgumentError(REQUEST_NOT_VALID, violations);
}

/** A batch of `size` events, more than one may hold; `field` is the proto path of its events. */
export function batchTooLarge(size: number, field: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `at most ${MAX_BATCH_SIZE} events per batch`,
    [{ field, description: `at most ${MAX_BATCH_SIZE} events, got ${size}` }],
    UsageReason.BATCH_TOO_LARGE,
  );
}

/** The bytes of event `index` of a request are no UsageEvent (`problem`: what the decoder said). */
export function notAUsageEvent(index: number, problem: string): InvalidArgumentError {
  return new InvalidArgumentError(`events[${index}] is not a valid UsageEvent`, [
    { field: `events[${index}]`, description: `not a valid UsageEvent: ${problem}` },
  ]);
}

/** No meter has the key `key`. */
export function meterNotFound(key: string): NotFoundError {
  return new NotFoundError(UsageReason.METER_NOT_FOUND, `no meter ${quote(key)}`);
}

/** The customer has no stored event with the id `eventId`. */
export function eventNotFound(customer: string, eventId: string): NotFoundError {
  return new NotFoundError(UsageReason.EVENT_NOT_FOUND, `no event ${quote(eventId)} of customer ${quote(customer)}`);
}

/** The event `eventId` was voided: it cannot be corrected again. */
export function eventVoided(eventId: string): FailedPreconditionError {
  return new FailedPreconditionError(UsageReason.EVENT_VOIDED, `event ${quote(eventId)} is voided`);
}
