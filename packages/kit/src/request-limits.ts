// What one request may cost in memory before any handler runs. Decoding a protobuf message builds an object per
// message, list element, map entry and unknown field: an empty message is 2 bytes on the wire and about 80 bytes
// decoded, so 8 MiB of them decoded to 360-650 MB and took a second and a half of CPU (the hostile burst of the
// at-rest benchmark). Two limits bound it:
// - the largest message read (`readMaxBytes`, Connect's own limit: past it a call is RESOURCE_EXHAUSTED before
//   its message is read whole);
// - the most values one message may hold (`maxValues`), counted on the wire, before protobuf-es or JSON.parse
//   decodes anything: messages, list elements, map entries and unknown fields in binary (the tags and packed
//   elements that make an object or an array slot), and `{`, `[` and `,` outside strings in JSON. A message
//   past it is not decoded: it is replaced by an empty one, and the request guard refuses the call with
//   INVALID_ARGUMENT naming the field where the count passed the limit (`requestValuesRefusal`).
// Compressed messages (gzip, br) are decompressed for counting, at most `readMaxBytes` of them; a message the
// counter cannot read (truncated, or of an encoding it does not know) is passed on as it came, for Connect and
// protobuf-es to refuse as they do.
import type http from 'node:http';
import http2 from 'node:http2';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { type DescMessage, ScalarType } from '@bufbuild/protobuf';
import { type ConnectRouter, type ContextValues, createContextKey, createContextValues } from '@connectrpc/connect';
import type { UniversalHandler, UniversalServerRequest } from '@connectrpc/connect/protocol';

/** The bounds of one request message. */
export interface RequestLimits {
  /** Largest request message read, in bytes (after decompression). */
  readMaxBytes: number;
  /** Most values (messages, list elements, map entries, unknown fields) one request message may hold. */
  maxValues: number;
}

/**
 * The limits every service has unless its definition sets others: 1 MiB is room for the largest request of the
 * catalog and subscription contracts (a catalog document of a million characters is the largest) and for a batch
 * of 1,000 usage events of 1 KiB each; 100,000 values are 1,000 events of 48 properties each, and decode to about
 * 10 MB at most.
 */
export const DEFAULT_REQUEST_LIMITS: RequestLimits = { readMaxBytes: 1024 * 1024, maxValues: 100_000 };

/** Where a request message passed `maxValues`: the field (proto path) whose values passed it. */
export interface ValuesRefusal {
  /** The proto path of the field, without list indexes (`spec.charges`); empty for the message itself. */
  field: string;
  /** The limit that was passed. */
  maxValues: number;
}

// The refusal of the message being read, set by the handler's body before the message is decoded, read by the
// request guard.
const refusalKey = createContextKey<ValuesRefusal | undefined>(undefined, { description: 'request values refusal' });

/** The refusal recorded for a call whose request message held more than its limit of values, if any. */
export function requestValuesRefusal(values: ContextValues | undefined): ValuesRefusal | undefined {
  return values?.get(refusalKey);
}

// ---- Counting on the wire -------------------------------------------------------------------------------------

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const FIXED32 = 5;

/** The deepest nesting counted, protobuf-es's own recursion limit: deeper messages fail to decode anyway. */
const MAX_DEPTH = 100;

/** Thrown when the bytes are not a message the counter can read: they are passed on uncounted. */
const UNREADABLE = Symbol('unreadable');

/** Bytes per element of a packed list of this scalar type: 0 for varints (counted by their last byte). */
function packedWidth(scalar: ScalarType): number {
  switch (scalar) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 8;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return 4;
    default:
      return 0;
  }
}

// What a field's occurrence on the wire costs decoded.
/** A singular scalar or enum: a slot of its message, not counted. */
const SINGULAR = 0;
/** One list element (a string, bytes, or an unpacked number). */
const ELEMENT = 1;
/** A message, alone or as a list element: counted, and its own fields counted in turn. */
const MESSAGE = 2;
/** A map entry: counted, and its value counted when it is a message. */
const MAP_ENTRY = 3;
/** A list of numbers or enums, packed: one value per element when it comes length-delimited. */
const PACKED = 4;

/** How one field of a message type is counted. */
interface FieldPlan {
  readonly name: string;
  readonly kind: number;
  /** The type of a message field, or of a map's values when they are messages. */
  readonly message: DescMessage | undefined;
  /** Bytes per packed element (0: varints). */
  readonly width: number;
}

/** The plans of a message type's fields, indexed by field number. */
type MessagePlans = readonly (FieldPlan | undefined)[];

const fieldPlans = new WeakMap<DescMessage, MessagePlans>();

/** How each field of `desc` is counted, by field number (compiled once per message type). */
function plansOf(desc: DescMessage): MessagePlans {
  const known = fieldPlans.get(desc);
  if (known) return known;
  const plans: (FieldPlan | undefined)[] = [];
  for (const field of desc.fields) {
    let kind = SINGULAR;
    let message: DescMessage | undefined;
    let width = 0;
    if (field.fieldKind === 'message') {
      kind = MESSAGE;
      message = field.message;
    } else if (field.fieldKind === 'map') {
      kind = MAP_ENTRY;
      message = field.mapKind === 'message' ? field.message : undefined;
    } else if (field.fieldKind === 'list') {
      if (field.listKind === 'message') {
        kind = MESSAGE;
        message = field.message;
      } else if (field.listKind === 'enum') kind = PACKED;
      else if (field.scalar === ScalarType.STRING || field.scalar === ScalarType.BYTES) kind = ELEMENT;
      else {
        kind = PACKED;
        width = packedWidth(field.scalar);
      }
    }
    plans[field.number] = { name: field.name, kind, message, width };
  }
  fieldPlans.set(desc, plans);
  return plans;
}

// The contents of a google.protobuf.Struct are named by the Struct's field, as the request guard names them.
const STRUCT_TYPES = new Set(['google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.ListValue']);

/**
 * Counts the values of one message. The messages it is inside are a stack of parallel arrays, one entry per level
 * (no object per message read): where each ends, how its fields are counted, and the name of the field holding it.
 */
class WireCounter {
  private pos = 0;
  private count = 0;
  private readonly bytes: Uint8Array;
  private readonly maxValues: number;
  /** How many levels deep the counter is: the request itself is level 0. */
  private depth = -1;
  /** Per level: the offset its bytes end at (exclusive); -1 for a group, which ends at its end tag. */
  private readonly ends = new Int32Array(MAX_DEPTH);
  /** Per level: its fields' plans; undefined for a map entry or an unknown group (not counted field by field). */
  private readonly plans: (MessagePlans | undefined)[] = new Array(MAX_DEPTH).fill(undefined);
  /** Per level, for a map entry: the type of its value, when a message. */
  private readonly mapValues: (DescMessage | undefined)[] = new Array(MAX_DEPTH).fill(undefined);
  /** Per level: the name of the field holding it, or undefined when it is named by the level above. */
  private readonly names: (string | undefined)[] = new Array(MAX_DEPTH).fill(undefined);
  /** Per level: whether it is inside a Struct, whose contents are named by the Struct's field. */
  private readonly inStruct = new Uint8Array(MAX_DEPTH);

  constructor(bytes: Uint8Array, maxValues: number) {
    this.bytes = bytes;
    this.maxValues = maxValues;
  }

  private varint(): number {
    const first = this.bytes[this.pos++];
    if (first === undefined) throw UNREADABLE;
    if (first < 0x80) return first;
    let value = first & 0x7f;
    for (let shift = 7; shift < 64; shift += 7) {
      const byte = this.bytes[this.pos++];
      if (byte === undefined) throw UNREADABLE;
      if (shift < 28) value |= (byte & 0x7f) << shift;
      if (byte < 0x80) return value >>> 0;
    }
    throw UNREADABLE;
  }

  /** The end of the length-delimited field whose length starts here. */
  private end(): number {
    const length = this.varint();
    const end = this.pos + length;
    if (end > this.bytes.length) throw UNREADABLE;
    return end;
  }

  private skip(wireType: number): void {
    if (wireType === VARINT) this.varint();
    else if (wireType === LENGTH_DELIMITED) this.pos = this.end();
    else if (wireType === FIXED64) this.pos += 8;
    else if (wireType === FIXED32) this.pos += 4;
    else throw UNREADABLE;
    if (this.pos > this.bytes.length) throw UNREADABLE;
  }

  private push(end: number, desc: DescMessage | undefined, name: string | undefined, mapValue?: DescMessage): void {
    const outer = this.depth >= 0 && this.inStruct[this.depth] === 1;
    const level = ++this.depth;
    if (level >= MAX_DEPTH) throw UNREADABLE;
    this.ends[level] = end;
    this.plans[level] = desc ? plansOf(desc) : undefined;
    this.mapValues[level] = mapValue;
    this.names[level] = outer ? undefined : name;
    this.inStruct[level] = outer || (desc !== undefined && STRUCT_TYPES.has(desc.typeName)) ? 1 : 0;
  }

  /** The proto path of field `plan` of the innermost message (its own path when inside a Struct). */
  private path(plan: FieldPlan | undefined): string {
    const names = this.names.slice(0, this.depth + 1).filter((name) => name !== undefined);
    if (plan && this.inStruct[this.depth] !== 1) names.push(plan.name);
    return names.join('.');
  }

  /** Adds `n` values read in field `plan` of the innermost message; the refusal once they pass the limit. */
  private add(n: number, plan: FieldPlan | undefined): ValuesRefusal | undefined {
    this.count += n;
    return this.count > this.maxValues ? { field: this.path(plan), maxValues: this.maxValues } : undefined;
  }

  /** The refusal of a message of type `desc` in the counter's bytes, or undefined when it is within the limit. */
  refusal(desc: DescMessage): ValuesRefusal | undefined {
    this.push(this.bytes.length, desc, undefined);
    while (this.depth >= 0) {
      const level = this.depth;
      const end = this.ends[level] as number;
      if (end >= 0 && this.pos >= end) {
        if (this.pos > end) throw UNREADABLE;
        this.depth--;
        continue;
      }
      const tag = this.varint();
      const wireType = tag & 7;
      if (wireType === END_GROUP) {
        if (end >= 0) throw UNREADABLE;
        this.depth--;
        continue;
      }
      const plans = this.plans[level];
      const plan = plans?.[tag >>> 3];
      let refusal: ValuesRefusal | undefined;
      if (plan === undefined) {
        // An unknown field (protobuf-es keeps each as an object), a group's contents, or a map entry's key or value.
        const mapValue = this.mapValues[level];
        if (plans) refusal = this.add(1, plan);
        if (wireType === START_GROUP) this.push(-1, undefined, undefined);
        else if (mapValue && tag === 0x12) {
          refusal ??= this.add(1, plan);
          this.push(this.end(), mapValue, undefined);
        } else this.skip(wireType);
      } else if (plan.kind === PACKED && wireType === LENGTH_DELIMITED) {
        const fieldEnd = this.end();
        let elements = 0;
        if (plan.width > 0) elements = Math.ceil((fieldEnd - this.pos) / plan.width);
        else for (let i = this.pos; i < fieldEnd; i++) if ((this.bytes[i] as number) < 0x80) elements++;
        this.pos = fieldEnd;
        refusal = this.add(elements, plan);
      } else if ((plan.kind === MESSAGE || plan.kind === MAP_ENTRY) && wireType === LENGTH_DELIMITED) {
        refusal = this.add(1, plan);
        if (plan.kind === MAP_ENTRY) this.push(this.end(), undefined, plan.name, plan.message);
        else this.push(this.end(), plan.message, plan.name);
      } else {
        if (plan.kind !== SINGULAR) refusal = this.add(1, plan);
        this.skip(wireType);
      }
      if (refusal) return refusal;
    }
    return undefined;
  }
}

/**
 * Where the binary message `bytes` of type `desc` holds more than `maxValues` values, or undefined when it does not
 * (or cannot be read: protobuf-es then refuses it).
 */
export function binaryValuesRefusal(
  desc: DescMessage,
  bytes: Uint8Array,
  maxValues: number,
): ValuesRefusal | undefined {
  try {
    return new WireCounter(bytes, maxValues).refusal(desc);
  } catch (err) {
    if (err === UNREADABLE) return undefined;
    throw err;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;

/**
 * Where the JSON message `bytes` (of type `desc`) holds more than `maxValues` values, counting `{`, `[` and `,`
 * outside strings, or undefined when it does not; the field named is the top-level one the count passed the limit
 * in (by its proto name).
 */
export function jsonValuesRefusal(desc: DescMessage, bytes: Uint8Array, maxValues: number): ValuesRefusal | undefined {
  let count = 0;
  let depth = 0;
  let topField = '';
  let lastStringStart = -1;
  let lastStringEnd = -1;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte === QUOTE) {
      const start = i + 1;
      for (i = start; i < bytes.length && bytes[i] !== QUOTE; i++) if (bytes[i] === BACKSLASH) i++;
      lastStringStart = start;
      lastStringEnd = i;
    } else if (byte === 0x7b || byte === 0x5b) {
      depth++;
      count++;
    } else if (byte === 0x7d || byte === 0x5d) depth--;
    else if (byte === 0x2c) count++;
    else if (byte === COLON && depth === 1 && lastStringStart >= 0) {
      const key = Buffer.from(bytes.buffer, bytes.byteOffset + lastStringStart, lastStringEnd - lastStringStart);
      const name = key.toString('utf8');
      topField = desc.fields.find((f) => f.jsonName === name || f.name === name)?.name ?? name;
    }
    if (count > maxValues) return { field: depth >= 2 ? topField : '', maxValues };
  }
  return undefined;
}

// ---- The handlers' bodies -------------------------------------------------------------------------------------

/** How a request's body carries its messages, from its content type. */
interface BodyFormat {
  /** Messages in 5-byte-prefixed envelopes (gRPC, gRPC-Web, Connect streams), or the body whole (Connect unary). */
  enveloped: boolean;
  json: boolean;
  /** The header naming the compression of its messages. */
  encodingHeader: string;
}

function bodyFormat(contentType: string): BodyFormat | undefined {
  const type = contentType.toLowerCase().split(';')[0]?.trim() ?? '';
  const grpc = /^application\/grpc(?:-web)?(?:\+(proto|json))?$/.exec(type);
  if (grpc) return { enveloped: true, json: grpc[1] === 'json', encodingHeader: 'grpc-encoding' };
  const stream = /^application\/connect\+(proto|json)$/.exec(type);
  if (stream) return { enveloped: true, json: stream[1] === 'json', encodingHeader: 'connect-content-encoding' };
  const unary = /^application\/(proto|json)$/.exec(type);
  if (unary) return { enveloped: false, json: unary[1] === 'json', encodingHeader: 'content-encoding' };
  return undefined;
}

/** `bytes` decompressed, at most `max` of them; undefined when they cannot be (the counter then passes them on). */
function decompressed(bytes: Uint8Array, encoding: string, max: number): Uint8Array | undefined {
  try {
    if (encoding === 'gzip') return gunzipSync(bytes, { maxOutputLength: max });
    if (encoding === 'br') return brotliDecompressSync(bytes, { maxOutputLength: max });
  } catch {
    return undefined;
  }
  return undefined;
}

function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const all = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return all;
}

/** The body of an empty message in `format`. */
function emptyMessage(format: BodyFormat): Uint8Array {
  return format.json ? new TextEncoder().encode('{}') : new Uint8Array(0);
}

/** Counts one message (compressed or not); the refusal when it holds too many values. */
function refusalOf(
  desc: DescMessage,
  format: BodyFormat,
  payload: Uint8Array,
  encoding: string | undefined,
  limits: RequestLimits,
): ValuesRefusal | undefined {
  const plain = encoding === undefined ? payload : decompressed(payload, encoding, limits.readMaxBytes);
  if (!plain) return undefined;
  return format.json
    ? jsonValuesRefusal(desc, plain, limits.maxValues)
    : binaryValuesRefusal(desc, plain, limits.maxValues);
}

/**
 * The enveloped messages of `body` as they come, each counted before it is passed on; one with too many values is
 * replaced by an empty one, and `refuse` told. An envelope larger than `readMaxBytes` is passed on uncounted, for
 * Connect to refuse at its header.
 */
async function* countedEnvelopes(
  body: AsyncIterable<Uint8Array>,
  desc: DescMessage,
  format: BodyFormat,
  encoding: string | undefined,
  limits: RequestLimits,
  refuse: (refusal: ValuesRefusal) => void,
): AsyncIterable<Uint8Array> {
  const iterator = body[Symbol.asyncIterator]();
  try {
    yield* envelopesCounted(iterator, desc, format, encoding, limits, refuse);
  } finally {
    // Connect stops reading at a message it refuses: the request's own stream is then told so.
    await iterator.return?.();
  }
}

async function* envelopesCounted(
  iterator: AsyncIterator<Uint8Array>,
  desc: DescMessage,
  format: BodyFormat,
  encoding: string | undefined,
  limits: RequestLimits,
  refuse: (refusal: ValuesRefusal) => void,
): AsyncIterable<Uint8Array> {
  let pending: Uint8Array[] = [];
  let pendingLength = 0;
  const take = (n: number): Uint8Array => {
    const all = concat(pending, pendingLength);
    const head = all.subarray(0, n);
    pending = pendingLength > n ? [all.subarray(n)] : [];
    pendingLength -= n;
    return head;
  };
  const fill = async (n: number): Promise<boolean> => {
    while (pendingLength < n) {
      const next = await iterator.next();
      if (next.done) return false;
      pending.push(next.value);
      pendingLength += next.value.byteLength;
    }
    return true;
  };
  for (;;) {
    if (!(await fill(5))) break;
    const header = take(5);
    const flags = header[0] as number;
    const length = new DataView(header.buffer, header.byteOffset, 5).getUint32(1);
    if (length > limits.readMaxBytes) {
      // Connect refuses it from its header: the rest passes as it comes, never buffered here.
      yield header;
      if (pendingLength > 0) yield take(pendingLength);
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
      return;
    }
    if (!(await fill(length))) {
      yield header;
      if (pendingLength > 0) yield take(pendingLength);
      return;
    }
    const payload = take(length);
    const compressed = (flags & 1) === 1;
    const refusal = refusalOf(desc, format, payload, compressed ? (encoding ?? '') : undefined, limits);
    if (refusal) {
      refuse(refusal);
      const empty = emptyMessage(format);
      const replaced = new Uint8Array(5 + empty.length);
      new DataView(replaced.buffer).setUint32(1, empty.length);
      replaced.set(empty, 5);
      yield replaced;
    } else {
      yield header;
      yield payload;
    }
  }
  if (pendingLength > 0) yield take(pendingLength);
}

/** Yields `chunks`, then what is left of `rest` (which it returns when it is stopped early). */
async function* replay(chunks: readonly Uint8Array[], rest?: AsyncIterator<Uint8Array>): AsyncIterable<Uint8Array> {
  try {
    yield* chunks;
    if (rest) for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
  } finally {
    await rest?.return?.();
  }
}

/** Serves `req` through `handler` with its messages counted first (see the top of this file). */
async function countedRequest(
  handler: UniversalHandler,
  req: UniversalServerRequest,
  limits: RequestLimits,
): ReturnType<UniversalHandler> {
  const format = bodyFormat(req.header.get('content-type') ?? '');
  const body = req.body;
  if (
    !format ||
    req.method !== 'POST' ||
    body === null ||
    typeof body !== 'object' ||
    !(Symbol.asyncIterator in body)
  ) {
    return handler(req);
  }
  const desc = handler.method.input;
  const contextValues = req.contextValues ?? createContextValues();
  const refuse = (refusal: ValuesRefusal) => contextValues.set(refusalKey, refusal);
  const rawEncoding = req.header.get(format.encodingHeader)?.toLowerCase();
  const encoding = rawEncoding === undefined || rawEncoding === 'identity' ? undefined : rawEncoding;
  const bytes = body as AsyncIterable<Uint8Array>;
  if (format.enveloped) {
    return handler({ ...req, contextValues, body: countedEnvelopes(bytes, desc, format, encoding, limits, refuse) });
  }
  // Connect unary: the body is the message, read whole here (Connect reads it whole too) up to readMaxBytes; a
  // longer one is passed on for Connect to refuse.
  const iterator = bytes[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
    chunks.push(next.value);
    length += next.value.byteLength;
    if (length > limits.readMaxBytes) return handler({ ...req, body: replay(chunks, iterator) });
  }
  const refusal = refusalOf(desc, format, concat(chunks, length), encoding, limits);
  if (!refusal) return handler({ ...req, body: replay(chunks) });
  refuse(refusal);
  const header = new Headers(req.header);
  header.delete('content-length');
  header.delete(format.encodingHeader);
  return handler({ ...req, header, contextValues, body: replay([emptyMessage(format)]) });
}

/**
 * Counts the values of every request message of `router`'s handlers before Connect decodes it (see the top of this
 * file); call it once every handler is registered.
 */
export function countRequestValues(router: ConnectRouter, limits: RequestLimits): void {
  const handlers = router.handlers;
  for (let i = 0; i < handlers.length; i++) {
    const handler = handlers[i];
    if (!handler) continue;
    handlers[i] = Object.assign((req: UniversalServerRequest) => countedRequest(handler, req, limits), handler);
  }
}

/**
 * Once the answer to an HTTP/2 call is sent (its trailers), reads and drops what the client still sends of a
 * request the server stopped reading: one refused before it was read whole (past `readMaxBytes`), or one whose
 * handler answered without reading it all. Node leaves such a stream open, its data unread, for as long as the
 * connection lasts: its flow-control window and the readable's buffer, about 130 KB, stayed held (800 refused
 * requests on one connection held 109 MB until it closed), and the stream kept its slot of the connection's
 * concurrent streams. Drained, the stream ends when the client finishes sending, as an HTTP/1.1 request's unread
 * body is dropped. (A RST_STREAM instead would overtake the trailers, and the client would never see its answer.)
 */
export function drainUnreadRequestWhenAnswered(req: http.IncomingMessage | http2.Http2ServerRequest): void {
  if (!(req instanceof http2.Http2ServerRequest)) return;
  const stream = req.stream;
  const sendTrailers = stream.sendTrailers.bind(stream);
  stream.sendTrailers = (headers) => {
    sendTrailers(headers);
    if (req.complete) return;
    // The request's own reader is done with it (and would pause the stream again): its data goes nowhere now.
    stream.removeAllListeners('data');
    stream.resume();
  };
}
