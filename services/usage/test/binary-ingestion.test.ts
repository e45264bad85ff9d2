// Unit tests of the binary ingestion decoder: every event decodes as protobuf-es decodes it, the shapes encoders
// produce take the fast path, and the rest (unusual or malformed) is left to protobuf-es or refused per event.
import { UsageEventSchema } from '@billing/proto/billing/usage/v1/resources_pb';
import { IngestEventsRequestSchema } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { create, fromBinary, fromJson, type JsonObject, type JsonValue, toBinary } from '@bufbuild/protobuf';
import { StructSchema } from '@bufbuild/protobuf/wkt';
import { expect, test } from '@jest/globals';
import fc from 'fast-check';
import { decodeSentEvents, readUsualEvent } from '../src/rpc/binary-ingestion.ts';
import { fromProtoUsageEvent } from '../src/rpc/convert.ts';

const now = Date.UTC(2026, 2, 10, 12);
const text = fc.string({ unit: 'binary', maxLength: 20 });
const properties = fc.dictionary(
  text,
  fc.oneof(fc.jsonValue({ maxDepth: 8 }), fc.double(), fc.constantFrom(-0, 2 ** 53, -1e300)),
  { maxKeys: 8 },
);
// Times as producers send them (seconds from 1970 to 3000, any nanos) or not at all.
const usualTime = fc.option(
  fc.record({
    seconds: fc.bigInt({ min: 0n, max: 32_503_680_000n }),
    nanos: fc.integer({ min: 0, max: 999_999_999 }),
  }),
  { nil: undefined },
);
// Any time the wire can carry: negative, past 2^53 ms, nanos out of range.
const anyTime = fc.option(
  fc.record({
    seconds: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    nanos: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  }),
  { nil: undefined },
);
// Properties as producers send them: no key "__proto__" at any depth (the fast path leaves those to protobuf-es).
const usualProperties = properties.filter((json) => !JSON.stringify(json).includes('"__proto__"'));
const usageEvent = (time: typeof usualTime, props: typeof properties) =>
  fc
    .record({
      id: text,
      customerExternalId: text,
      type: text,
      eventTime: time,
      properties: fc.option(props, { nil: undefined }),
    })
    .map(({ eventTime, properties, ...init }) =>
      toBinary(
        UsageEventSchema,
        create(UsageEventSchema, {
          ...init,
          ...(eventTime ? { eventTime } : {}),
          ...(properties ? { properties: properties as JsonObject } : {}),
        }),
      ),
    );

const protobufEs = (bytes: Uint8Array) => fromProtoUsageEvent(fromBinary(UsageEventSchema, bytes));
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((part) => [...part]));
const struct = (json: JsonObject) => toBinary(StructSchema, fromJson(StructSchema, json));
/** A length as a protobuf varint. */
function varint(n: number): Uint8Array {
  const bytes: number[] = [];
  for (; n > 0x7f; n = Math.floor(n / 128)) bytes.push((n % 128) | 0x80);
  bytes.push(n);
  return Uint8Array.from(bytes);
}
/** An event of only properties (field 5), from Struct bytes of less than 128 bytes. */
const propertiesField = (structBytes: Uint8Array) => concat(Uint8Array.of(0x2a, structBytes.length), structBytes);

test('every event decodes as protobuf-es decodes it', () => {
  fc.assert(
    fc.property(fc.array(usageEvent(anyTime, properties), { minLength: 1, maxLength: 5 }), (events) => {
      expect(decodeSentEvents(events)).toEqual(events.map(protobufEs));
    }),
  );
});

test('events as encoders write them take the fast path', () => {
  fc.assert(
    fc.property(usageEvent(usualTime, usualProperties), (bytes) => {
      expect(readUsualEvent(bytes)).toEqual(protobufEs(bytes));
    }),
  );
  const sent = create(UsageEventSchema, {
    id: 'e-1',
    customerExternalId: 'acme',
    type: 'build.finished',
    eventTime: { seconds: BigInt(now / 1000), nanos: 250_000_000 },
    properties: { minutes: 3, os: 'linux', tags: ['a', null, true], nested: { x: 1.5 } },
  });
  expect(readUsualEvent(toBinary(UsageEventSchema, sent))).toEqual({
    id: 'e-1',
    customerExternalId: 'acme',
    type: 'build.finished',
    timeMs: now + 250,
    properties: { minutes: 3, os: 'linux', tags: ['a', null, true], nested: { x: 1.5 } },
  });
});

test('unusual encodings leave the fast path and decode as protobuf-es decodes them', () => {
  const base = toBinary(
    UsageEventSchema,
    create(UsageEventSchema, { id: 'e-1', customerExternalId: 'acme', type: 'build.finished', properties: { a: 1 } }),
  );
  const unusual: [string, Uint8Array, JsonObject][] = [
    // Field 9 (varint 1): unknown, skipped.
    ['an unknown field', concat(base, Uint8Array.of(0x48, 0x01)), { a: 1 }],
    // Properties twice: the two Structs merge.
    ['properties sent twice', concat(base, propertiesField(struct({ b: 2 }))), { a: 1, b: 2 }],
    // One Struct holding a key twice: the last value wins.
    ['a key twice', propertiesField(concat(struct({ k: 1 }), struct({ k: 2 }))), { k: 2 }],
    // A Value without a kind (entry: key "k", empty value) reads as null.
    ['an empty value', propertiesField(Uint8Array.of(0x0a, 0x05, 0x0a, 0x01, 0x6b, 0x12, 0x00)), { k: null }],
    [
      'the key __proto__',
      propertiesField(struct(JSON.parse('{"__proto__": 1}') as JsonObject)),
      JSON.parse('{"__proto__": 1}'),
    ],
  ];
  for (const [name, bytes, want] of unusual) {
    expect([name, readUsualEvent(bytes)]).toEqual([name, undefined]);
    const [decoded] = decodeSentEvents([bytes]);
    expect([name, decoded]).toEqual([name, protobufEs(bytes)]);
    expect([name, decoded?.properties]).toEqual([name, want]);
  }
});

test('an event that is not protobuf is INVALID_ARGUMENT, naming it', () => {
  const good = toBinary(UsageEventSchema, create(UsageEventSchema, { id: 'e-1' }));
  // A string of 5 bytes with 2 sent; an id that is not UTF-8.
  for (const bad of [Uint8Array.of(0x0a, 0x05, 0x61, 0x62), Uint8Array.of(0x0a, 0x02, 0xc3, 0x28)]) {
    expect(() => decodeSentEvents([good, bad], 7)).toThrow(
      expect.objectContaining({
        code: 3,
        violations: [expect.objectContaining({ field: 'events[8]' })],
      }),
    );
  }
});

test('deep properties are decoded, or refused, exactly as when protobuf-es decoded whole requests', () => {
  // Lists only, or structs with a list every third level; around a number or an empty struct (one message
  // deeper: protobuf-es counts messages).
  const nested = (levels: number, listsOnly: boolean, leaf: JsonValue): JsonValue => {
    let value = leaf;
    for (let i = 0; i < levels; i++) value = listsOnly || i % 3 === 0 ? [value] : { k: value };
    return value;
  };
  const shapes = Array.from({ length: 480 }, (_, i) => [(i >> 2) + 1, i % 2 === 0, i % 4 < 2 ? 1 : {}] as const);
  for (const [levels, listsOnly, leaf] of shapes) {
    const bytes = toBinary(
      UsageEventSchema,
      create(UsageEventSchema, { id: `deep-${levels}`, properties: { v: nested(levels, listsOnly, leaf) } }),
    );
    const request = toBinary(IngestEventsRequestSchema, create(IngestEventsRequestSchema, { events: [] }));
    const whole = concat(request, Uint8Array.of(0x12), varint(bytes.length), bytes);
    let wanted: unknown;
    try {
      wanted = fromBinary(IngestEventsRequestSchema, whole).events.map(fromProtoUsageEvent);
    } catch {
      wanted = 'refused';
    }
    let got: unknown;
    try {
      got = decodeSentEvents([bytes]);
    } catch (err) {
      expect(err).toEqual(expect.objectContaining({ code: 3 }));
      got = 'refused';
    }
    expect([levels, got]).toEqual([levels, wanted]);
    // The fast path reads at most 32 levels; deeper ones are protobuf-es's.
    if (levels > 40) expect([levels, readUsualEvent(bytes)]).toEqual([levels, undefined]);
  }
});
