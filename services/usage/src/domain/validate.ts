// Validation of the usage service's requests: each function builds the validated input of one use case from its
// request, listing every violation with its proto field path, or throws INVALID_ARGUMENT. Required fields are
// checked on reads as on writes. (Each ingested event is validated on its own, by validateEvent in
// usage-event.ts: its problems are results, not errors.) What needs stored state (a meter's dimensions, an
// amended event's time against the clock) is checked by the use case, with the functions here.
import { type FieldViolation, quote, refuseViolations } from '@billing/kit/errors';
import { type PageRequest, readPageRequest } from '@billing/kit/pagination';
import { isTimeZone } from '@billing/kit/time-zone';
import type { Meter } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { Period } from '@billing/proto/billing/type/v1/types_pb';
import {
  type AmendEventRequest,
  type GetPeriodUsageRequest,
  type ListEventsRequest,
  type QueryUsageRequest,
  type VoidEventRequest,
  Window,
} from '@billing/proto/billing/usage/v1/usage_service_pb';
import type { JsonObject } from '@bufbuild/protobuf';
import { type Timestamp, timestampDate } from '@bufbuild/protobuf/wkt';
import { batchTooLarge, invalidRequest, REQUEST_NOT_VALID } from './errors.ts';
import type { EventPoint } from './period-value.ts';
import { EVENT_ID_RULE, encodeProperties, isEventId, isNameText, MAX_BATCH_SIZE, NAME_RULE } from './usage-event.ts';

type Violations = FieldViolation[];

const DAY = 24 * 3_600_000;
/** Longest range of a usage query. */
const MAX_QUERY_MS = 400 * DAY;
/** Longest range of a usage query by the hour. */
const MAX_HOURLY_QUERY_MS = 31 * DAY;
/** Longest meter key (the catalog's keys are at most 64 characters). */
const MAX_METER_KEY_LENGTH = 64;
/** Longest reason of a correction. */
const MAX_REASON_LENGTH = 500;
/** The times a request may name: those PostgreSQL and ISO 8601 write alike (years 1 to 9999). */
const EARLIEST_TIME = Date.parse('0001-01-01T00:00:00.000Z');
const LATEST_TIME = Date.parse('9999-12-31T23:59:59.999Z');
const WINDOWS: ReadonlySet<Window> = new Set([Window.UNSPECIFIED, Window.NONE, Window.HOUR, Window.DAY, Window.MONTH]);

/** A required customer external id (the rule of ingested events). */
function checkCustomer(out: Violations, customer: string): void {
  const field = 'customer_external_id';
  if (customer === '') out.push({ field, description: 'required' });
  else if (!isNameText(customer)) out.push({ field, description: NAME_RULE });
}

/** A required meter key: text PostgreSQL can store, no longer than a catalog key. */
function checkMeterKey(out: Violations, key: string): void {
  const field = 'meter_key';
  if (key === '') out.push({ field, description: 'required' });
  else if (key.length > MAX_METER_KEY_LENGTH || !isNameText(key)) {
    out.push({
      field,
      description: `must be 1-${MAX_METER_KEY_LENGTH} characters, without NUL or unpaired surrogates`,
    });
  }
}

/** A required event id. */
function checkEventId(out: Violations, id: string): void {
  if (id === '') out.push({ field: 'event_id', description: 'required' });
  else if (!isEventId(id)) out.push({ field: 'event_id', description: EVENT_ID_RULE });
}

/** A correction's reason, for the audit trail. */
function checkReason(out: Violations, reason: string): void {
  if (reason.length > MAX_REASON_LENGTH) {
    out.push({ field: 'reason', description: `at most ${MAX_REASON_LENGTH} characters` });
  }
}

/** The time of a timestamp field, or undefined (with a violation) when it is outside the times a request may name. */
function readTime(out: Violations, timestamp: Timestamp, field: string): Date | undefined {
  const time = timestampDate(timestamp);
  const ms = time.getTime();
  if (Number.isFinite(ms) && ms >= EARLIEST_TIME && ms <= LATEST_TIME) return time;
  out.push({ field, description: 'must be a time from year 1 to year 9999' });
  return undefined;
}

/** A required period ending after it starts, as [start, end), or undefined with at least one violation. */
function readRange(out: Violations, period: Period | undefined, field: string): [Date, Date] | undefined {
  if (!period) {
    out.push({ field, description: 'required' });
    return undefined;
  }
  if (!period.startTime) out.push({ field: `${field}.start_time`, description: 'required' });
  if (!period.endTime) out.push({ field: `${field}.end_time`, description: 'required' });
  if (!period.startTime || !period.endTime) return undefined;
  const start = readTime(out, period.startTime, `${field}.start_time`);
  const end = readTime(out, period.endTime, `${field}.end_time`);
  if (!start || !end) return undefined;
  if (end.getTime() <= start.getTime()) {
    out.push({ field: `${field}.end_time`, description: 'must be after start_time' });
    return undefined;
  }
  return [start, end];
}

/** Refuses a batch of more than MAX_BATCH_SIZE events (`field`: the proto path of its events). */
export function checkBatchSize(size: number, field: string): void {
  if (size > MAX_BATCH_SIZE) throw batchTooLarge(size, field);
}

/** What GetPeriodUsage asks: a customer's usage of a meter over [start, end). */
export interface PeriodUsageInput {
  /** The customer's external id. */
  customer: string;
  /** The meter's key. */
  meterKey: string;
  /** Inclusive start. */
  start: Date;
  /** Exclusive end. */
  end: Date;
}

/** The input of GetPeriodUsage. */
export function validateGetPeriodUsage(req: GetPeriodUsageRequest): PeriodUsageInput {
  const out: Violations = [];
  checkCustomer(out, req.customerExternalId);
  checkMeterKey(out, req.meterKey);
  const range = readRange(out, req.period, 'period');
  if (!range || out.length > 0) throw invalidRequest(out);
  return { customer: req.customerExternalId, meterKey: req.meterKey, start: range[0], end: range[1] };
}

/** What QueryUsage asks: a customer's usage of a meter over a range, in windows, grouped and filtered. */
export interface UsageQueryInput extends PeriodUsageInput {
  /** The windows' width (UNSPECIFIED: one window, as NONE). */
  window: Window;
  /** The IANA time zone days and months start in. */
  timeZone: string;
  /** Dimensions to group by. */
  groupBy: readonly string[];
  /** Accepted values per dimension. */
  filters: readonly { dimension: string; values: readonly string[] }[];
}

/** The input of QueryUsage (its dimensions are checked against the meter by checkDimensions). */
export function validateQueryUsage(req: QueryUsageRequest): UsageQueryInput {
  const out: Violations = [];
  checkCustomer(out, req.customerExternalId);
  checkMeterKey(out, req.meterKey);
  const range = readRange(out, req.range, 'range');
  if (!WINDOWS.has(req.window)) out.push({ field: 'window', description: `unknown window ${req.window}` });
  const timeZone = req.timeZone || 'UTC';
  if (!isTimeZone(timeZone)) out.push({ field: 'time_zone', description: `unknown time zone ${quote(timeZone)}` });
  if (range) {
    const length = range[1].getTime() - range[0].getTime();
    if (length > MAX_QUERY_MS) out.push({ field: 'range', description: 'at most 400 days' });
    else if (req.window === Window.HOUR && length > MAX_HOURLY_QUERY_MS) {
      out.push({ field: 'range', description: 'at most 31 days with hourly windows' });
    }
  }
  if (!range || out.length > 0) throw invalidRequest(out);
  return {
    customer: req.customerExternalId,
    meterKey: req.meterKey,
    start: range[0],
    end: range[1],
    window: req.window,
    timeZone,
    groupBy: req.groupBy,
    filters: req.filters.map((f) => ({ dimension: f.dimension, values: f.values })),
  };
}

/** Refuses group-by dimensions and filters of a query that are not dimensions of its meter. */
export function checkDimensions(meter: Meter, query: UsageQueryInput): void {
  const out: Violations = [];
  query.groupBy.forEach((dimension, i) => {
    if (!meter.groupBy.includes(dimension)) {
      out.push({ field: `group_by[${i}]`, description: `the meter has no dimension ${quote(dimension)}` });
    }
  });
  query.filters.forEach((filter, i) => {
    if (!meter.groupBy.includes(filter.dimension)) {
      out.push({
        field: `filters[${i}].dimension`,
        description: `the meter has no dimension ${quote(filter.dimension)}`,
      });
    }
  });
  refuseViolations(out, REQUEST_NOT_VALID);
}

/** What ListEvents asks: a page of a customer's events, optionally filtered. */
export interface ListEventsInput {
  /** The customer's external id. */
  customer: string;
  /** Only events of this type, when set. */
  type: string | undefined;
  /** Only events the meter with this key selects, when set. */
  meterKey: string | undefined;
  /** Only events at or after this time, when set. */
  from: Date | undefined;
  /** Only events before this time, when set. */
  to: Date | undefined;
  /** Whether voided events are listed too. */
  includeVoided: boolean;
  /** The page asked for. */
  page: PageRequest;
  /** Where the page starts: after this event (time, then id), when it is not the first. */
  after: EventPoint | undefined;
  /** The filters a page token is bound to. */
  pageFilters: unknown;
}

/** The cursor of a page token (the last event of the previous page, [ISO time, id]), or undefined if it is none. */
function readCursor(after: string): EventPoint | undefined {
  try {
    const cursor: unknown = JSON.parse(after);
    if (!Array.isArray(cursor) || cursor.length !== 2) return undefined;
    const [time, id] = cursor as unknown[];
    if (typeof time !== 'string' || typeof id !== 'string' || !isEventId(id)) return undefined;
    const at = new Date(time);
    const ms = at.getTime();
    const readable = Number.isFinite(ms) && ms >= EARLIEST_TIME && ms <= LATEST_TIME && at.toISOString() === time;
    return readable ? { time: at, id } : undefined;
  } catch {
    return undefined;
  }
}

/** The input of ListEvents. */
export function validateListEvents(req: ListEventsRequest): ListEventsInput {
  const out: Violations = [];
  checkCustomer(out, req.customerExternalId);
  if (req.type !== '' && !isNameText(req.type)) out.push({ field: 'type', description: NAME_RULE });
  if (req.meterKey !== '') checkMeterKey(out, req.meterKey);
  const from = req.range?.startTime ? readTime(out, req.range.startTime, 'range.start_time') : undefined;
  const to = req.range?.endTime ? readTime(out, req.range.endTime, 'range.end_time') : undefined;
  refuseViolations(out, REQUEST_NOT_VALID);
  // A token is bound to the filters as given, times as ISO text (a Period message holds 64-bit integers).
  const pageFilters = {
    c: req.customerExternalId,
    t: req.type,
    m: req.meterKey,
    r: [from?.toISOString() ?? null, to?.toISOString() ?? null],
    v: req.includeVoided,
  };
  const page = readPageRequest(req.pageSize, req.pageToken, pageFilters);
  const after = page.after === undefined ? undefined : readCursor(page.after);
  if (page.after !== undefined && !after) {
    throw invalidRequest([{ field: 'page_token', description: 'not a token returned by this list' }]);
  }
  return {
    customer: req.customerExternalId,
    type: req.type || undefined,
    meterKey: req.meterKey || undefined,
    from,
    to,
    includeVoided: req.includeVoided,
    page,
    after,
    pageFilters,
  };
}

/** Which stored event a correction is about, and why it is made. */
export interface CorrectionTarget {
  /** The external id of the event's customer. */
  customer: string;
  /** The event's id. */
  eventId: string;
  /** Why, for the audit trail. */
  reason: string;
}

/** The target of a correction request (its customer, event id and reason), with the request's violations. */
function readTarget(out: Violations, req: { customerExternalId: string; eventId: string; reason: string }) {
  checkCustomer(out, req.customerExternalId);
  checkEventId(out, req.eventId);
  checkReason(out, req.reason);
  return { customer: req.customerExternalId, eventId: req.eventId, reason: req.reason };
}

/** The input of VoidEvent. */
export function validateVoidEvent(req: VoidEventRequest): CorrectionTarget {
  const out: Violations = [];
  const target = readTarget(out, req);
  refuseViolations(out, REQUEST_NOT_VALID);
  return target;
}

/** What AmendEvent asks: a new time or new properties (or both) for a stored event. */
export interface AmendEventInput extends CorrectionTarget {
  /** The new time; undefined keeps it. */
  time: Date | undefined;
  /** The new properties, replacing all of them; undefined keeps them. */
  properties: JsonObject | undefined;
}

/** The input of AmendEvent (the new time is checked against the clock by the use case). */
export function validateAmendEvent(req: AmendEventRequest): AmendEventInput {
  const out: Violations = [];
  const target = readTarget(out, req);
  const time = req.eventTime ? readTime(out, req.eventTime, 'event_time') : undefined;
  if (req.properties) {
    const encoded = encodeProperties(req.properties);
    if (typeof encoded !== 'string') out.push({ field: 'properties', description: encoded.message });
  }
  refuseViolations(out, REQUEST_NOT_VALID);
  return { ...target, time, properties: req.properties };
}
