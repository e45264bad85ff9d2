// Events between services: their envelope, and how it travels as headers. Event types themselves are
// contracts, declared in @billing/proto/events.

/** The envelope of an event: everything but the payload. */
export interface EventEnvelope {
  /** ULID, also the NATS message id. */
  eventId: string;
  /** Versioned type, e.g. `plan.published.v1`. */
  eventType: string;
  /** Full protobuf name of the payload message. */
  schema: string;
  /** Id of the aggregate the event is about (plan key, subscription id...). */
  aggregateId: string;
  /** 1, 2, 3... per aggregate, so consumers can detect gaps and stale events. */
  aggregateSeq: number;
  /** When it happened, on the producer's clock (a test clock in tests). */
  occurredTime: Date;
  /** The producing service. */
  producer: string;
  /** The request that caused it, if any. */
  requestId?: string;
  /** W3C trace context of the request that caused it, if any. */
  traceparent?: string;
}

/** An event as it travels: logical subject, envelope and encoded payload. */
export interface BusMessage {
  /** Logical subject without prefix. */
  subject: string;
  /** The envelope. */
  envelope: EventEnvelope;
  /** Protobuf binary payload. */
  payload: Uint8Array;
}

const HEADER = {
  eventId: 'Billing-Event-Id',
  eventType: 'Billing-Event-Type',
  schema: 'Billing-Schema',
  aggregateId: 'Billing-Aggregate-Id',
  aggregateSeq: 'Billing-Aggregate-Seq',
  occurredTime: 'Billing-Occurred-Time',
  producer: 'Billing-Producer',
  requestId: 'Billing-Request-Id',
  traceparent: 'traceparent',
} as const;

/** The envelope as header name/value pairs (Nats-Msg-Id is added by the NATS bus). */
export function envelopeToHeaders(envelope: EventEnvelope): Record<string, string> {
  const headers: Record<string, string> = {
    [HEADER.eventId]: envelope.eventId,
    [HEADER.eventType]: envelope.eventType,
    [HEADER.schema]: envelope.schema,
    [HEADER.aggregateId]: envelope.aggregateId,
    [HEADER.aggregateSeq]: String(envelope.aggregateSeq),
    [HEADER.occurredTime]: envelope.occurredTime.toISOString(),
    [HEADER.producer]: envelope.producer,
  };
  if (envelope.requestId) headers[HEADER.requestId] = envelope.requestId;
  if (envelope.traceparent) headers[HEADER.traceparent] = envelope.traceparent;
  return headers;
}

/** Reads an envelope back from headers; throws when a required header is missing or malformed. */
export function envelopeFromHeaders(get: (name: string) => string | undefined): EventEnvelope {
  const required = (name: string): string => {
    const value = get(name);
    if (!value) throw new Error(`event header ${name} is missing`);
    return value;
  };
  const aggregateSeq = Number(required(HEADER.aggregateSeq));
  const occurredTime = new Date(required(HEADER.occurredTime));
  if (!Number.isSafeInteger(aggregateSeq) || Number.isNaN(occurredTime.getTime())) {
    throw new Error('event headers carry a malformed sequence or time');
  }
  const envelope: EventEnvelope = {
    eventId: required(HEADER.eventId),
    eventType: required(HEADER.eventType),
    schema: required(HEADER.schema),
    aggregateId: required(HEADER.aggregateId),
    aggregateSeq,
    occurredTime,
    producer: required(HEADER.producer),
  };
  const requestId = get(HEADER.requestId);
  if (requestId) envelope.requestId = requestId;
  const traceparent = get(HEADER.traceparent);
  if (traceparent) envelope.traceparent = traceparent;
  return envelope;
}

/** Whether a subject matches a NATS-style filter (`*` one token, `>` the rest). */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (f[i] !== '*' && f[i] !== s[i]) return false;
  }
  return f.length === s.length;
}
