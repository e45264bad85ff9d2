// The request guard: before any handler runs, every request is refused with INVALID_ARGUMENT, naming the field
// by its proto path, when it holds what no RPC accepts:
// - text PostgreSQL cannot store (a NUL character, or a UTF-16 surrogate without its pair) in any string:
//   fields, lists, map keys and values, nested messages, google.protobuf.Struct keys and values (named by the
//   Struct's field, the place inside it, by its last segments, in the description);
// - a key, id or token longer than the contract allows (limits by field name, in `lengthLimit`; docs/api.md);
// - an enum number the contract does not declare;
// - a google.protobuf.Timestamp or Duration outside the range its definition documents (the range of protobuf's
//   JSON form), which would otherwise reach a Date or PostgreSQL as an invalid time.
// - more values (messages, list elements, map entries) in one message than the server's limit: counted on the
//   wire before the message was decoded (request-limits.ts), which left an empty message in its place.
// Wrapper types (google.protobuf.StringValue...) are checked as the scalar they wrap, under their field's name.
// Services then never meet such values: PostgreSQL would refuse them as INTERNAL, and a megabyte key would come
// back in an answer. A message quotes a value only through `quote()`, never whole.
//
// The walk follows each message's descriptor, compiled once per message type into the checks of the fields that
// can hold text, enums or times, so a message without any (numbers only) is not walked at all.

import type { DescEnum, DescField, DescMessage, JsonValue } from '@bufbuild/protobuf';
import { ScalarType } from '@bufbuild/protobuf';
import { type Duration, isWrapperDesc, type Timestamp } from '@bufbuild/protobuf/wkt';
import type { ContextValues, Interceptor } from '@connectrpc/connect';
import { fieldsDecodedByHandler } from './codec-route.ts';
import { type FieldViolation, InvalidArgumentError, quote } from './errors.ts';
import { requestValuesRefusal } from './request-limits.ts';
import { isStorableText } from './text.ts';

/** Longest key (`key`, `*_key`, `*_keys`): catalog keys are lower snake case, 1-64 characters. */
export const MAX_KEY_LENGTH = 64;
/** Longest id (`id`, `*_id`, `*_ids`, `request_id`), ours or a caller's (external ids, event ids). */
export const MAX_ID_LENGTH = 128;
/** Longest id another system assigned (`stripe_*_id`): Stripe's ids are at most 255 characters. */
const MAX_FOREIGN_ID_LENGTH = 255;
/** Longest token (`page_token`, `*_token`): tokens are the service's own, a few hundred characters at most. */
const MAX_TOKEN_LENGTH = 1_024;

/** The longest value the contract allows in a string field named `name` (proto name), if the guard bounds it. */
export function lengthLimit(name: string): number | undefined {
  if (name === 'key' || name.endsWith('_key') || name.endsWith('_keys')) return MAX_KEY_LENGTH;
  if (name.startsWith('stripe_') && name.endsWith('_id')) return MAX_FOREIGN_ID_LENGTH;
  if (name === 'id' || name.endsWith('_id') || name.endsWith('_ids')) return MAX_ID_LENGTH;
  if (name === 'token' || name.endsWith('_token')) return MAX_TOKEN_LENGTH;
  return undefined;
}

/** Why PostgreSQL cannot store `text` (a NUL, an unpaired surrogate), or undefined when it can. */
function unstorable(text: string): string | undefined {
  if (isStorableText(text)) return undefined;
  const character = text.includes('\u0000') ? 'a NUL character' : 'a UTF-16 surrogate without its pair';
  return `${quote(text)} holds ${character}`;
}

// A field path as the walk goes: field names, list indexes and map keys, rendered only for a violation.
type Segment = string | number | { mapKey: string };

function render(path: readonly Segment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string') out += out === '' ? segment : `.${segment}`;
    else out += `[${quote(segment.mapKey)}]`;
  }
  return out;
}

/** What the walk collects: the violations, and the path it is at. */
interface Walk {
  readonly out: FieldViolation[];
  readonly path: Segment[];
}

function violation(walk: Walk, description: string): void {
  walk.out.push({ field: render(walk.path), description });
}

/** Checks one value of a field (a list element, a map value, or the field's value itself). */
type ValueCheck = (value: unknown, walk: Walk) => void;

function textCheck(limit: number | undefined): ValueCheck {
  return (value, walk) => {
    if (typeof value !== 'string') return;
    // The length first: it is free, and a refused megabyte is not scanned.
    if (limit !== undefined && value.length > limit) {
      violation(walk, `at most ${limit} characters (got ${value.length})`);
      return;
    }
    const why = unstorable(value);
    if (why) violation(walk, why);
  };
}

const enumNumbers = new WeakMap<DescEnum, ReadonlySet<number>>();

function enumCheck(desc: DescEnum): ValueCheck {
  let declared = enumNumbers.get(desc);
  if (!declared) {
    declared = new Set(desc.values.map((v) => v.number));
    enumNumbers.set(desc, declared);
  }
  const numbers = declared;
  return (value, walk) => {
    if (typeof value === 'number' && !numbers.has(value)) {
      violation(walk, `${value} is not a value of ${desc.typeName}`);
    }
  };
}

// A google.protobuf.Timestamp from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, as its definition
// documents (RFC 3339, protobuf's JSON form).
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;
const MAX_NANOS = 999_999_999;

const timestampCheck: ValueCheck = (value, walk) => {
  const { seconds, nanos } = value as Timestamp;
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS) {
    violation(walk, `not a time from 0001-01-01 to 9999-12-31 (seconds ${seconds})`);
  } else if (nanos < 0 || nanos > MAX_NANOS) {
    violation(walk, `nanos must be from 0 to 999999999 (got ${nanos})`);
  }
};

// A google.protobuf.Duration of at most 10,000 years either way, its nanos of the sign of its seconds, as its
// definition documents.
const MAX_DURATION_SECONDS = 315_576_000_000n;

const durationCheck: ValueCheck = (value, walk) => {
  const { seconds, nanos } = value as Duration;
  if (seconds < -MAX_DURATION_SECONDS || seconds > MAX_DURATION_SECONDS) {
    violation(walk, `not a duration of at most 10000 years either way (seconds ${seconds})`);
  } else if (nanos < -MAX_NANOS || nanos > MAX_NANOS || (seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0)) {
    violation(walk, `nanos must be from -999999999 to 999999999, of the sign of seconds (got ${nanos})`);
  }
};

// A wrapper (google.protobuf.StringValue...) of text, checked as a string field of the same name. protobuf-es
// holds a singular one outside a oneof as its bare value, and one in a oneof, a list or a map as a message.
function wrappedTextCheck(name: string): ValueCheck {
  const text = textCheck(lengthLimit(name));
  return (value, walk) =>
    text(value !== null && typeof value === 'object' ? (value as { value?: unknown }).value : value, walk);
}

// A place inside a google.protobuf.Struct: its segment and the place holding it (the Struct itself has none).
interface JsonPlace {
  readonly value: JsonValue;
  readonly segment?: Segment;
  readonly parent?: JsonPlace;
}

// How many of the innermost segments of a place inside a Struct a description names: enough to find the value,
// and short whatever the depth and the keys (each quoted as a prefix), so that a hundred such violations still
// fit in an answer.
const STRUCT_PLACE_SEGMENTS = 3;

// A Struct's contents are named by the Struct's field, as a service names them (`properties`); where inside it
// the value is, the description says: by its last segments, after an ellipsis when there are more.
function structViolation(walk: Walk, place: JsonPlace, description: string): void {
  const inner: Segment[] = [];
  let at: JsonPlace | undefined = place;
  for (; at?.segment !== undefined && inner.length < STRUCT_PLACE_SEGMENTS; at = at.parent) inner.push(at.segment);
  const elided = at?.segment !== undefined ? '…' : '';
  violation(walk, `at ${elided}${render(inner.reverse())}: ${description}`);
}

// google.protobuf.Struct, held as JSON: every key and string, however deep, walked without recursion (a
// document nested thousands deep must not exhaust the stack).
const structCheck: ValueCheck = (value, walk) => {
  const pending: JsonPlace[] = [{ value: value as JsonValue }];
  for (let place = pending.pop(); place; place = pending.pop()) {
    const json = place.value;
    if (typeof json === 'string') {
      const why = unstorable(json);
      if (why) structViolation(walk, place, why);
    } else if (Array.isArray(json)) {
      for (let i = json.length - 1; i >= 0; i--) pending.push({ value: json[i] ?? null, segment: i, parent: place });
    } else if (json !== null && typeof json === 'object') {
      for (const [key, element] of Object.entries(json).reverse()) {
        const child: JsonPlace = { value: element ?? null, segment: { mapKey: key }, parent: place };
        const why = unstorable(key);
        if (why) structViolation(walk, child, `the key ${why}`);
        pending.push(child);
      }
    }
  }
};

/** The checks of a message type's fields that can hold text or enums; empty when none can. */
type MessagePlan = readonly ((message: Record<string, unknown>, walk: Walk) => void)[];

const plans = new WeakMap<DescMessage, MessagePlan>();
// The message types whose plans are being compiled: a type that contains itself meets its own unfinished plan.
const compiling = new Set<DescMessage>();

/** The plan of `desc`, compiled on first use (a message type that contains itself gets it once compiled). */
function planOf(desc: DescMessage): MessagePlan {
  const known = plans.get(desc);
  if (known) return known;
  const checks: ((message: Record<string, unknown>, walk: Walk) => void)[] = [];
  // Registered before its fields are compiled, so that a recursive type meets its own (growing) plan.
  plans.set(desc, checks);
  compiling.add(desc);
  const decodedByHandler = fieldsDecodedByHandler(desc);
  for (const field of desc.fields) {
    if (decodedByHandler?.has(field.number)) continue;
    const check = valueCheck(field);
    if (check) checks.push(fieldCheck(field, check));
  }
  compiling.delete(desc);
  return checks;
}

/** A check of one value of `field`, or undefined when its values can hold no text nor enum. */
function valueCheck(field: DescField): ValueCheck | undefined {
  const single = (kind: 'scalar' | 'enum' | 'message'): ValueCheck | undefined => {
    if (kind === 'scalar') return field.scalar === ScalarType.STRING ? textCheck(lengthLimit(field.name)) : undefined;
    if (kind === 'enum') return field.enum ? enumCheck(field.enum) : undefined;
    const message = field.message;
    if (!message) return undefined;
    if (message.typeName === 'google.protobuf.Struct' && field.parent.typeName !== 'google.protobuf.Value') {
      return structCheck;
    }
    if (message.typeName === 'google.protobuf.Timestamp') return timestampCheck;
    if (message.typeName === 'google.protobuf.Duration') return durationCheck;
    if (isWrapperDesc(message)) {
      return message.fields[0]?.scalar === ScalarType.STRING ? wrappedTextCheck(field.name) : undefined;
    }
    const plan = planOf(message);
    if (plan.length === 0 && !compiling.has(message)) return undefined;
    return (value, walk) => {
      if (value !== null && typeof value === 'object') walkMessage(plan, value as Record<string, unknown>, walk);
    };
  };
  switch (field.fieldKind) {
    case 'scalar':
    case 'enum':
    case 'message':
      return single(field.fieldKind);
    case 'list':
      return listCheck(single(field.listKind));
    case 'map':
      return mapCheck(field.mapKey === ScalarType.STRING, single(field.mapKind));
  }
}

function listCheck(element: ValueCheck | undefined): ValueCheck | undefined {
  if (!element) return undefined;
  return (value, walk) => {
    if (!Array.isArray(value)) return;
    for (let i = 0; i < value.length; i++) {
      walk.path.push(i);
      element(value[i], walk);
      walk.path.pop();
    }
  };
}

function mapCheck(stringKeys: boolean, entry: ValueCheck | undefined): ValueCheck | undefined {
  if (!stringKeys && !entry) return undefined;
  return (value, walk) => {
    if (value === null || typeof value !== 'object') return;
    // for-in, not Object.entries: a map of a hundred thousand entries is walked without an array per entry.
    const map = value as Record<string, unknown>;
    for (const key in map) {
      walk.path.push({ mapKey: key });
      const why = stringKeys ? unstorable(key) : undefined;
      if (why) violation(walk, `the key ${why}`);
      entry?.(map[key], walk);
      walk.path.pop();
    }
  };
}

/** Reads `field` of a message (a oneof member from its oneof) and checks its value under the field's name. */
function fieldCheck(field: DescField, check: ValueCheck) {
  const name = field.name;
  const local = field.localName;
  const oneof = field.oneof?.localName;
  return (message: Record<string, unknown>, walk: Walk) => {
    let value: unknown;
    if (oneof === undefined) value = message[local];
    else {
      const selected = message[oneof] as { case?: string; value?: unknown } | undefined;
      if (selected?.case !== local) return;
      value = selected.value;
    }
    if (value === undefined) return;
    walk.path.push(name);
    check(value, walk);
    walk.path.pop();
  };
}

function walkMessage(plan: MessagePlan, message: Record<string, unknown>, walk: Walk): void {
  for (const check of plan) check(message, walk);
}

/** Every violation of the guard's rules in `message` (of type `desc`), with proto field paths. */
export function requestViolations(desc: DescMessage, message: object): FieldViolation[] {
  const walk: Walk = { out: [], path: [] };
  const plan = planOf(desc);
  if (plan.length > 0) walkMessage(plan, message as Record<string, unknown>, walk);
  return walk.out;
}

/**
 * Throws INVALID_ARGUMENT when the message just read held more values than the server reads (it was not decoded:
 * `message` is empty), or when `message` (`what` names it) breaks the guard's rules.
 */
function guard(desc: DescMessage, message: object, what: string, values: ContextValues | undefined): void {
  const refusal = requestValuesRefusal(values);
  if (refusal) {
    const description = `more than ${refusal.maxValues} values (messages, list elements and map entries) in one message`;
    throw new InvalidArgumentError(`${what} is too large`, [{ field: refusal.field, description }]);
  }
  const violations = requestViolations(desc, message);
  if (violations.length > 0) throw new InvalidArgumentError(`${what} is not valid`, violations);
}

async function* guarded<M extends object>(
  desc: DescMessage,
  messages: AsyncIterable<M>,
  values: ContextValues | undefined,
): AsyncIterable<M> {
  let n = 0;
  for await (const message of messages) {
    guard(desc, message, `streamed request ${n++}`, values);
    yield message;
  }
}

/**
 * The interceptor that refuses hostile input before any handler: unary requests are checked whole, streamed
 * ones message by message as the handler reads them.
 */
export function requestGuard(): Interceptor {
  return (next) => (req) => {
    const desc = req.method.input;
    if (!req.stream) {
      guard(desc, req.message, 'the request', req.contextValues);
      return next(req);
    }
    return next({ ...req, message: guarded(desc, req.message, req.contextValues) });
  };
}
