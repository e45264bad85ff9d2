// A usage event as ingested: validation against the documented limits, and the fingerprint that tells a
// retry (same content) from a conflicting duplicate (same id, other content).
import { hash } from 'node:crypto';
import { isStorableText } from '@billing/kit/text';
import { RejectReason } from '@billing/proto/billing/usage/v1/resources_pb';
import type { JsonObject, JsonValue } from '@bufbuild/protobuf';

/** Most events in one batch. */
export const MAX_BATCH_SIZE = 1_000;
/** How far in the future an event may be. */
export const MAX_FUTURE_MS = 5 * 60 * 1000;
/** How far in the past an event may be (the retention). */
export const RETENTION_MS = 400 * 24 * 3600 * 1000;
/** Largest encoded properties. */
export const MAX_PROPERTIES_BYTES = 64 * 1024;

/** An event as a producer sent it, decoded and not yet validated. */
export interface SentEvent {
  /** The producer's id. */
  id: string;
  /** The customer's external id. */
  customerExternalId: string;
  /** The event type. */
  type: string;
  /** event_time in milliseconds since the epoch; undefined when it was not sent. */
  timeMs: number | undefined;
  /** Its properties ({} when none were sent). */
  properties: JsonObject;
}

/** An event as meters read it. */
export interface MeteredEvent {
  /** Its number in the work at hand (results are keyed by it). */
  index: number;
  /** The producer's id. */
  id: string;
  /** The customer's external id. */
  customer: string;
  /** The event type. */
  type: string;
  /** When the usage happened. */
  time: Date;
  /** Its properties. */
  properties: JsonObject;
}

/** An event that passed validation, in the shape the service works with. */
export interface ValidEvent extends MeteredEvent {
  /** Its time, as ISO 8601 text. */
  timeIso: string;
  /** Its properties as canonical JSON (keys sorted). */
  propertiesJson: string;
  /** Fingerprint of type, time and properties. */
  fingerprint: string;
}

/** A stored raw event. */
export interface StoredUsageEvent {
  /** The producer's id. */
  id: string;
  /** The customer's external id. */
  customer: string;
  /** The event type. */
  type: string;
  /** When the usage happened. */
  time: Date;
  /** Its properties. */
  properties: JsonObject;
  /** When it was ingested. */
  ingestedAt: Date;
  /** Whether it was voided. */
  voided: boolean;
  /** Whether it falls in a billing period that had closed (isLate) when it was stored or last amended. */
  late: boolean;
}

/** A stored event as a correction reads it: with how often it was amended and when it last changed. */
export interface CorrectableEvent extends StoredUsageEvent {
  /** Times it was amended. */
  amendmentCount: number;
  /** When it last changed. */
  updatedAt: Date | undefined;
}

/** Why an event was refused. */
export interface Rejection {
  /** The number validation was given (`validateEvent`'s `index`). */
  index: number;
  /** The event's id, as sent. */
  id: string;
  /** The reason. */
  reason: RejectReason;
  /** The offending field of the event, as a proto path (`event_time`). */
  field: string;
  /** For humans. */
  message: string;
}

const PRINTABLE = /^[\x21-\x7e]{1,128}$/;

/** Whether `id` can be an event's id: 1-128 printable ASCII characters. */
export function isEventId(id: string): boolean {
  return PRINTABLE.test(id);
}

/** Longest customer external id and event type. */
export const MAX_NAME_LENGTH = 128;

// In JSON made by JSON.stringify, the escape of a NUL or of a surrogate (which it escapes only unpaired): a
// backslash that no other backslash escapes, then u0000 or ud800-udfff.
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f])/i;

/**
 * Whether `text` can be a customer external id or an event type: 1-128 characters, none of them NUL or a
 * surrogate without its pair (PostgreSQL cannot store those).
 */
export function isNameText(text: string): boolean {
  return text.length >= 1 && text.length <= MAX_NAME_LENGTH && isStorableText(text);
}

/** Whether JSON made by JSON.stringify holds a string PostgreSQL cannot store (see isStorableText). */
function unstorableJson(json: string): boolean {
  return json.includes('\\u') && UNSTORABLE_ESCAPE.test(json);
}

// JSON with object keys sorted, so that the same content always has the same fingerprint. Flat objects (the
// usual properties) go through the native serializer: as they are when their keys come sorted, else given their
// keys in order.
function canonical(value: JsonValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const keys = Object.keys(value);
  let flat = true;
  let sorted = true;
  for (let i = 0; i < keys.length; i++) {
    const v = value[keys[i] as string];
    if (v !== null && typeof v === 'object') flat = false;
    if (i > 0 && (keys[i - 1] as string) > (keys[i] as string)) sorted = false;
  }
  if (flat && sorted) return JSON.stringify(value);
  keys.sort();
  if (flat) return JSON.stringify(value, keys);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k] ?? null)}`).join(',')}}`;
}

const DAY = 86_400_000;
const TWO_DIGITS = Array.from({ length: 100 }, (_, n) => String(n).padStart(2, '0'));
const THREE_DIGITS = Array.from({ length: 1_000 }, (_, n) => String(n).padStart(3, '0'));
// "YYYY-MM-DDT" by day since the epoch: events fall within the retention, so a few hundred days are in use.
const DAY_PREFIXES = new Map<number, string>();
const MAX_DAY_PREFIXES = 1_000;

/** `time` as Date.prototype.toISOString writes it (for the years 0-9999), in a tenth of its time. */
export function isoTime(time: Date): string {
  const ms = time.getTime();
  const day = Math.floor(ms / DAY);
  let prefix = DAY_PREFIXES.get(day);
  if (prefix === undefined) {
    prefix = new Date(day * DAY).toISOString().slice(0, 11);
    if (DAY_PREFIXES.size >= MAX_DAY_PREFIXES) DAY_PREFIXES.clear();
    DAY_PREFIXES.set(day, prefix);
  }
  let rest = ms - day * DAY;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = Math.floor(rest / 1_000);
  return `${prefix}${TWO_DIGITS[hours]}:${TWO_DIGITS[minutes]}:${TWO_DIGITS[seconds]}.${THREE_DIGITS[rest - seconds * 1_000]}Z`;
}

/** Why an event time cannot be accepted. */
export interface TimeRefusal {
  /** The reason an ingested event reports. */
  reason: RejectReason;
  /** For humans. */
  message: string;
}

const IN_FUTURE: TimeRefusal = {
  reason: RejectReason.TIME_IN_FUTURE,
  message: 'event_time is more than 5 minutes in the future',
};
const BEYOND_RETENTION: TimeRefusal = {
  reason: RejectReason.TIME_BEYOND_RETENTION,
  message: 'event_time is older than the 400-day retention',
};

/**
 * Why an event cannot have `time` at `now`, for ingestion and amendments alike: more than 5 minutes ahead (clock
 * skew, never future usage), or older than the retention (its raw events are gone); undefined when it can.
 */
export function eventTimeRefusal(time: Date, now: Date): TimeRefusal | undefined {
  if (time.getTime() > now.getTime() + MAX_FUTURE_MS) return IN_FUTURE;
  if (time.getTime() < now.getTime() - RETENTION_MS) return BEYOND_RETENTION;
  return undefined;
}

/** Properties as canonical JSON (what is stored), or why they cannot be stored (ingestion and amendments). */
export function encodeProperties(properties: JsonObject): string | { reason: RejectReason; message: string } {
  const encoded = canonical(properties);
  if (unstorableJson(encoded)) {
    return {
      reason: RejectReason.INVALID_VALUE,
      message: 'properties must not hold NUL characters or unpaired surrogates',
    };
  }
  if (Buffer.byteLength(encoded) > MAX_PROPERTIES_BYTES) {
    return { reason: RejectReason.PROPERTIES_TOO_LARGE, message: 'properties exceed 64 KiB' };
  }
  return encoded;
}

/** What an event id must be (isEventId), as messages say it after the field. */
export const EVENT_ID_RULE = 'must be 1-128 printable ASCII characters';
/** What a customer external id or an event type must be (isNameText), as messages say it after the field. */
export const NAME_RULE = 'must be 1-128 characters, without NUL or unpaired surrogates';

/** Validates one event at `now`; `index` numbers it (results are keyed by it). */
export function validateEvent(event: SentEvent, index: number, now: Date): ValidEvent | Rejection {
  const reject = (reason: RejectReason, field: string, message: string): Rejection => ({
    index,
    id: event.id,
    reason,
    field,
    message,
  });
  if (!isEventId(event.id)) return reject(RejectReason.INVALID_ID, 'id', `id ${EVENT_ID_RULE}`);
  const customer = event.customerExternalId;
  if (!isNameText(customer)) {
    return reject(RejectReason.INVALID_CUSTOMER, 'customer_external_id', `customer_external_id ${NAME_RULE}`);
  }
  if (!isNameText(event.type)) return reject(RejectReason.INVALID_TYPE, 'type', `type ${NAME_RULE}`);
  if (event.timeMs === undefined) return reject(RejectReason.MISSING_TIME, 'event_time', 'event_time is required');
  const time = new Date(event.timeMs);
  if (Number.isNaN(time.getTime()))
    return reject(RejectReason.MISSING_TIME, 'event_time', 'event_time is not a valid time');
  const refusal = eventTimeRefusal(time, now);
  if (refusal) return reject(refusal.reason, 'event_time', refusal.message);
  const properties = event.properties;
  const encoded = encodeProperties(properties);
  if (typeof encoded !== 'string') return reject(encoded.reason, 'properties', encoded.message);
  const timeIso = isoTime(time);
  const fingerprint = hash('sha256', `${event.type}\n${timeIso}\n${encoded}`, 'base64url');
  return {
    index,
    id: event.id,
    customer,
    type: event.type,
    time,
    timeIso,
    properties,
    propertiesJson: encoded,
    fingerprint,
  };
}

/** Whether a validation result is a rejection. */
export function isRejection(result: ValidEvent | Rejection): result is Rejection {
  return 'reason' in result;
}
