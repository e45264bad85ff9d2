// The large shapes of hostile requests, built on the wire for the unary RPCs of a set of services, each as large
// as `size` bytes and costing the most memory per byte that protobuf decoding allows:
// - a huge list: a repeated field holding as many of its cheapest elements as fit (an empty message in 2 bytes,
//   an empty string in 2, a packed number in 1), the shapes of the hostile-input test scaled up;
// - a huge map: as many entries with distinct short keys as fit;
// - a huge string: one string field holding the whole message;
// - deep structs: a google.protobuf.Struct field holding values nested 45 lists deep (90 messages, under protobuf-es's limit of
//   100), side by side until the message is full.
// Shapes are made for the fields at the top of a request and one message field down.
import { type DescField, type DescMessage, type DescService, ScalarType } from '@bufbuild/protobuf';

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v > 0x7f) {
    bytes.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

const LENGTH_DELIMITED = 2;
const tag = (field: DescField, wireType: number) => varint(field.number * 8 + wireType);
/** A length-delimited field holding `body`. */
const delimited = (field: DescField, body: Buffer) =>
  Buffer.concat([tag(field, LENGTH_DELIMITED), varint(body.length), body]);

/** Room for the body of a length-delimited field, so that the field fills `size` bytes. */
function room(field: DescField, size: number): number {
  let body = size - tag(field, LENGTH_DELIMITED).length - varint(size).length;
  while (tag(field, LENGTH_DELIMITED).length + varint(body).length + body > size) body--;
  return body;
}

/** `element` repeated to fill at most `size` bytes. */
function repeated(element: Buffer, size: number): Buffer {
  const count = Math.floor(size / element.length);
  return Buffer.alloc(count * element.length, element);
}

/** A google.protobuf.Value holding list values nested `depth` deep. */
function deepValue(depth: number): Buffer {
  let value = Buffer.from([0x08, 0x00]); // null_value
  for (let i = 0; i < depth; i++) {
    const list = Buffer.concat([Buffer.from([0x0a]), varint(value.length), value]); // ListValue.values
    value = Buffer.concat([Buffer.from([0x32]), varint(list.length), list]); // Value.list_value
  }
  return value;
}

/** A Struct's body of entries with distinct keys, each holding `value`, filling at most `size` bytes. */
function structEntries(value: Buffer, size: number): Buffer {
  const entries: Buffer[] = [];
  let length = 0;
  for (let i = 0; ; i++) {
    const key = Buffer.from(i.toString(36));
    const body = Buffer.concat([
      Buffer.from([0x0a]),
      varint(key.length),
      key,
      Buffer.from([0x12]),
      varint(value.length),
      value,
    ]);
    const entry = Buffer.concat([Buffer.from([0x0a]), varint(body.length), body]);
    if (length + entry.length > size) break;
    entries.push(entry);
    length += entry.length;
  }
  return Buffer.concat(entries);
}

/** A hostile body: which shape, in which field, and its bytes. */
export interface Shape {
  name: string;
  bytes: Buffer;
}

/** The shapes of `field` filling `size` bytes, as the field's own bytes (tag included). */
function fieldShapes(field: DescField, size: number): Shape[] {
  switch (field.fieldKind) {
    case 'list': {
      if (field.listKind === 'message') {
        return [
          {
            name: `huge list ${field.name}`,
            bytes: repeated(Buffer.concat([tag(field, LENGTH_DELIMITED), Buffer.from([0])]), size),
          },
        ];
      }
      if (field.listKind === 'scalar' && (field.scalar === ScalarType.STRING || field.scalar === ScalarType.BYTES)) {
        return [
          {
            name: `huge list ${field.name}`,
            bytes: repeated(Buffer.concat([tag(field, LENGTH_DELIMITED), Buffer.from([0])]), size),
          },
        ];
      }
      // Packed numbers and enums: one byte each.
      return [{ name: `huge list ${field.name}`, bytes: delimited(field, Buffer.alloc(room(field, size), 1)) }];
    }
    case 'map': {
      const entries: Buffer[] = [];
      let length = 0;
      const value = field.mapKind === 'message' ? Buffer.from([0x12, 0x00]) : Buffer.alloc(0);
      for (let i = 0; ; i++) {
        const key = Buffer.from(i.toString(36));
        const entry = delimited(field, Buffer.concat([Buffer.from([0x0a]), varint(key.length), key, value]));
        if (length + entry.length > size) break;
        entries.push(entry);
        length += entry.length;
      }
      return [{ name: `huge map ${field.name}`, bytes: Buffer.concat(entries) }];
    }
    case 'scalar':
      if (field.scalar !== ScalarType.STRING) return [];
      return [{ name: `huge string ${field.name}`, bytes: delimited(field, Buffer.alloc(room(field, size), 'x')) }];
    case 'message':
      if (field.message.typeName === 'google.protobuf.Struct') {
        return [
          {
            name: `deep struct ${field.name}`,
            bytes: delimited(field, structEntries(deepValue(45), room(field, size) - 16)),
          },
        ];
      }
      return [];
    default:
      return [];
  }
}

/** The shapes of a request of type `desc`: in its own fields, and in those of its message fields. */
export function requestShapes(desc: DescMessage, size: number): Shape[] {
  const shapes: Shape[] = [];
  for (const field of desc.fields) {
    shapes.push(...fieldShapes(field, size));
    if (field.fieldKind === 'message' && field.message.typeName !== 'google.protobuf.Struct') {
      for (const inner of field.message.fields) {
        for (const shape of fieldShapes(inner, room(field, size) - 8)) {
          shapes.push({ name: `${field.name}.${shape.name}`, bytes: delimited(field, shape.bytes) });
        }
      }
    }
  }
  return shapes;
}

/** One hostile call: the RPC's path, what the shape is, and the request's bytes. */
export interface HostileCall {
  path: string;
  name: string;
  bytes: Buffer;
}

/** Every shape of every unary RPC of `services`, at each of `sizes` bytes. */
export function hostileCalls(services: readonly DescService[], sizes: readonly number[]): HostileCall[] {
  return services.flatMap((service) =>
    service.methods
      .filter((method) => method.methodKind === 'unary')
      .flatMap((method) =>
        sizes.flatMap((size) =>
          requestShapes(method.input, size).map((shape) => ({
            path: `/${service.typeName}/${method.name}`,
            name: `${method.name} ${shape.name}`,
            bytes: shape.bytes,
          })),
        ),
      ),
  );
}
