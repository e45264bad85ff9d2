// Binary ingestion requests, decoded here instead of by protobuf-es. Its generic decoder builds and reflects a
// message per event, value and timestamp: 3.3 KB of garbage per event, more than the rest of ingestion makes,
// and a microsecond and a half of CPU. Requests arrive with their events left as bytes (messages reading the
// same wire format, served through routeByCodec), and each event of the usual shape is read straight into a
// SentEvent. Anything else (unknown or repeated fields, empty values, negative or huge times, non-ASCII text
// that is not UTF-8, very deep properties) goes to protobuf-es, so every event decodes as it always did.
import type { UsageEvent } from '@billing/proto/billing/usage/v1/resources_pb';
import {
  type IngestEventStreamResponseSchema,
  type IngestEventsRequest,
  IngestEventsRequestSchema,
  type IngestEventsResponseSchema,
  UsageService,
} from '@billing/proto/billing/usage/v1/usage_service_pb';
import {
  create,
  createFileRegistry,
  type DescMessage,
  type DescMethodClientStreaming,
  type DescMethodUnary,
  fromBinary,
  type JsonObject,
  type JsonValue,
  type Message,
  toBinary,
} from '@bufbuild/protobuf';
import type { GenMessage } from '@bufbuild/protobuf/codegenv2';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from '@bufbuild/protobuf/wkt';
import { notAUsageEvent } from '../domain/errors.ts';
import type { SentEvent } from '../domain/usage-event.ts';
import { fromProtoUsageEvent } from './convert.ts';

/** billing.usage.v1.IngestEventsRequest as binary ingestion reads it. */
type BinaryIngestEventsRequest = Message<'billing.usage.v1.binary.IngestEventsRequest'> & {
  requestId: string;
  events: Uint8Array[];
};

/** billing.usage.v1.IngestEventStreamRequest as binary ingestion reads it. */
type BinaryIngestEventStreamRequest = Message<'billing.usage.v1.binary.IngestEventStreamRequest'> & {
  events: Uint8Array[];
};

const { OPTIONAL, REPEATED } = FieldDescriptorProto_Label;
const { STRING, BYTES } = FieldDescriptorProto_Type;
// The two requests with the same field numbers, `events` read as bytes: the wire format of a message field and of
// a bytes field is the same. Their own package keeps them from passing for the contract's messages.
const registry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: 'billing/usage/v1/binary_ingestion.proto',
    package: 'billing.usage.v1.binary',
    syntax: 'proto3',
    messageType: [
      {
        name: 'IngestEventsRequest',
        field: [
          { name: 'request_id', jsonName: 'requestId', number: 1, label: OPTIONAL, type: STRING },
          { name: 'events', jsonName: 'events', number: 2, label: REPEATED, type: BYTES },
        ],
      },
      {
        name: 'IngestEventStreamRequest',
        field: [{ name: 'events', jsonName: 'events', number: 1, label: REPEATED, type: BYTES }],
      },
    ],
  }),
  () => undefined,
);

function messageOf<T extends Message>(typeName: string): GenMessage<T> {
  const desc: DescMessage | undefined = registry.getMessage(typeName);
  if (!desc) throw new Error(`${typeName} is missing from the binary ingestion descriptors`);
  return desc as GenMessage<T>;
}

/** The binary form of IngestEventsRequest. */
const BinaryIngestEventsRequestSchema = messageOf<BinaryIngestEventsRequest>(
  'billing.usage.v1.binary.IngestEventsRequest',
);
/** The binary form of IngestEventStreamRequest. */
const BinaryIngestEventStreamRequestSchema = messageOf<BinaryIngestEventStreamRequest>(
  'billing.usage.v1.binary.IngestEventStreamRequest',
);

/** Thrown inside the fast decoder when an event is not of the usual shape: protobuf-es decodes it instead. */
const UNUSUAL = Symbol('unusual event');
/** Deepest properties the fast decoder reads. */
const MAX_DEPTH = 32;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// Reads one event's bytes, in a Buffer over the whole request (events are views into it).
class EventReader {
  buf: Buffer;
  pos: number;

  constructor(buf: Buffer, pos: number) {
    this.buf = buf;
    this.pos = pos;
  }

  /** A varint of at most 5 bytes (tags, lengths, nanos): larger ones are unusual. */
  varint(): number {
    const buf = this.buf;
    let b = buf[this.pos++] as number;
    let v = b & 0x7f;
    for (let shift = 7; b > 0x7f; shift += 7) {
      if (shift > 28) throw UNUSUAL;
      b = buf[this.pos++] as number;
      v += (b & 0x7f) * 2 ** shift;
    }
    return v;
  }

  /** The end of a length-delimited field starting here, within `end`. */
  fieldEnd(end: number): number {
    const length = this.varint();
    const fieldEnd = this.pos + length;
    if (fieldEnd > end) throw UNUSUAL;
    return fieldEnd;
  }

  string(end: number): string {
    const stop = this.fieldEnd(end);
    const buf = this.buf;
    let text: string | undefined;
    for (let i = this.pos; i < stop; i++) {
      if ((buf[i] as number) > 0x7f) {
        try {
          text = strictUtf8.decode(buf.subarray(this.pos, stop));
        } catch {
          throw UNUSUAL;
        }
        break;
      }
    }
    text ??= buf.toString('latin1', this.pos, stop);
    this.pos = stop;
    return text;
  }

  /** google.protobuf.Timestamp in milliseconds, as protobuf-es's timestampMs computes it. */
  timestampMs(end: number): number {
    const stop = this.fieldEnd(end);
    let seconds = 0;
    let nanos = 0;
    let seen = 0;
    while (this.pos < stop) {
      const tag = this.buf[this.pos++];
      const bit = tag === 0x08 ? 1 : tag === 0x10 ? 2 : 0;
      if (bit === 0 || seen & bit) throw UNUSUAL;
      seen |= bit;
      // At most 5 bytes: seconds up to 2^35 (year 3058), and no negative numbers (10 bytes).
      const value = this.varint();
      if (bit === 1) seconds = value;
      else if (value < 2 ** 31) nanos = value;
      else throw UNUSUAL;
    }
    if (this.pos !== stop) throw UNUSUAL;
    return seconds * 1000 + Math.round(nanos / 1_000_000);
  }

  /** google.protobuf.Struct as JSON, its entries in the usual shape: key then value, each once. */
  struct(stop: number, depth: number): JsonObject {
    const object: JsonObject = {};
    while (this.pos < stop) {
      if (this.buf[this.pos++] !== 0x0a) throw UNUSUAL;
      const entryEnd = this.fieldEnd(stop);
      if (this.buf[this.pos++] !== 0x0a) throw UNUSUAL;
      const key = this.string(entryEnd);
      if (this.buf[this.pos++] !== 0x12 || this.fieldEnd(entryEnd) !== entryEnd) throw UNUSUAL;
      if (key === '__proto__' || Object.hasOwn(object, key)) throw UNUSUAL;
      object[key] = this.value(entryEnd, depth);
    }
    if (this.pos !== stop) throw UNUSUAL;
    return object;
  }

  /** google.protobuf.Value as JSON, with exactly one kind set; `depth` values deep (MAX_DEPTH at most). */
  value(stop: number, depth: number): JsonValue {
    if (depth > MAX_DEPTH) throw UNUSUAL;
    let value: JsonValue;
    switch (this.buf[this.pos++]) {
      case 0x08: // null_value
        this.varint();
        value = null;
        break;
      case 0x11: // number_value, a little-endian double
        if (this.pos + 8 > stop) throw UNUSUAL;
        value = this.buf.readDoubleLE(this.pos);
        this.pos += 8;
        break;
      case 0x1a: // string_value
        value = this.string(stop);
        break;
      case 0x20: // bool_value
        value = this.varint() !== 0;
        break;
      case 0x2a: // struct_value
        value = this.struct(this.fieldEnd(stop), depth + 1);
        break;
      case 0x32: {
        // list_value: its values, field 1
        const listEnd = this.fieldEnd(stop);
        const list: JsonValue[] = [];
        while (this.pos < listEnd) {
          if (this.buf[this.pos++] !== 0x0a) throw UNUSUAL;
          const itemEnd = this.fieldEnd(listEnd);
          list.push(this.value(itemEnd, depth + 1));
          if (this.pos !== itemEnd) throw UNUSUAL;
        }
        value = list;
        break;
      }
      default:
        throw UNUSUAL;
    }
    if (this.pos !== stop) throw UNUSUAL;
    return value;
  }

  /** billing.usage.v1.UsageEvent, each field at most once and no other. */
  event(stop: number): SentEvent {
    let id = '';
    let customer = '';
    let type = '';
    let timeMs: number | undefined;
    let properties: JsonObject = {};
    let seen = 0;
    while (this.pos < stop) {
      const tag = this.buf[this.pos++] as number;
      // Fields 1-5, all length-delimited: tags 0x0a, 0x12, 0x1a, 0x22, 0x2a.
      const field = tag >> 3;
      if ((tag & 7) !== 2 || field < 1 || field > 5 || seen & (1 << field)) throw UNUSUAL;
      seen |= 1 << field;
      if (field === 1) id = this.string(stop);
      else if (field === 2) customer = this.string(stop);
      else if (field === 3) type = this.string(stop);
      else if (field === 4) timeMs = this.timestampMs(stop);
      else properties = this.struct(this.fieldEnd(stop), 0);
    }
    if (this.pos !== stop) throw UNUSUAL;
    return { id, customerExternalId: customer, type, timeMs, properties };
  }
}

/**
 * Decodes the events of a binary request (each a UsageEvent's bytes) as protobuf-es would, into SentEvents.
 * `firstIndex` numbers the first one in errors. An event that is not valid protobuf is INVALID_ARGUMENT.
 */
export function decodeSentEvents(events: readonly Uint8Array[], firstIndex = 0): SentEvent[] {
  const decoded: SentEvent[] = [];
  let whole: Buffer | undefined;
  for (const [i, bytes] of events.entries()) {
    if (whole?.buffer !== bytes.buffer) whole = Buffer.from(bytes.buffer);
    decoded.push(readUsualEvent(bytes, whole) ?? fromProtoUsageEvent(parseUsageEvent(bytes, firstIndex + i)));
  }
  return decoded;
}

/**
 * The event in `bytes` when it has the usual shape (see above), else undefined; `whole` is a Buffer over all
 * of `bytes.buffer`.
 */
export function readUsualEvent(bytes: Uint8Array, whole = Buffer.from(bytes.buffer)): SentEvent | undefined {
  try {
    return new EventReader(whole, bytes.byteOffset).event(bytes.byteOffset + bytes.byteLength);
  } catch {
    return undefined;
  }
}

/**
 * An event's bytes decoded by protobuf-es, as a request's event (its nesting limit counts from the request, as
 * when protobuf-es decoded whole requests); INVALID_ARGUMENT, naming `events[index]`, when they are no UsageEvent.
 */
function parseUsageEvent(bytes: Uint8Array, index: number): UsageEvent {
  try {
    const request = new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(bytes).finish();
    const [event] = fromBinary(IngestEventsRequestSchema, request).events;
    if (event) return event;
    throw new Error('no event');
  } catch (err) {
    throw notAUsageEvent(index, err instanceof Error ? err.message : String(err));
  }
}

/**
 * The request as protobuf-es decodes it whole (unknown fields kept: a request_id's fingerprint is its bytes
 * re-encoded); INVALID_ARGUMENT, naming the first event that is no UsageEvent, when it cannot.
 */
export function parseIngestEventsRequest(request: BinaryIngestEventsRequest): IngestEventsRequest {
  try {
    return fromBinary(IngestEventsRequestSchema, toBinary(BinaryIngestEventsRequestSchema, request));
  } catch (err) {
    request.events.forEach(parseUsageEvent);
    throw err;
  }
}

/** IngestEvents, its request read as BinaryIngestEventsRequest. */
export const binaryIngestEvents = {
  ...UsageService.method.ingestEvents,
  input: BinaryIngestEventsRequestSchema,
} as DescMethodUnary<typeof BinaryIngestEventsRequestSchema, typeof IngestEventsResponseSchema>;

/** IngestEventStream, its requests read as BinaryIngestEventStreamRequest. */
export const binaryIngestEventStream = {
  ...UsageService.method.ingestEventStream,
  input: BinaryIngestEventStreamRequestSchema,
} as DescMethodClientStreaming<typeof BinaryIngestEventStreamRequestSchema, typeof IngestEventStreamResponseSchema>;
