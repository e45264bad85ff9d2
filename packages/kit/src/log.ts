// Structured JSON logs (pino) with secrets redacted and every value bounded; request-scoped children carry the
// request id. Whatever a call site logs (a caller's megabyte string, an error with a huge message, a deep or
// circular object), the logger itself bounds it, and removes the credentials of any URL in a string.
import { type DestinationStream, type Logger, pino } from 'pino';
import { redactCutText, redactUrls } from './redact.ts';

/** Paths never written to logs: credentials, payment secrets and card data. */
export const REDACTED_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'password',
  '*.password',
  'apiKey',
  '*.apiKey',
  'secret',
  '*.secret',
  'stripeSecretKey',
  '*.stripeSecretKey',
  'webhookSecret',
  '*.webhookSecret',
  'cardNumber',
  '*.cardNumber',
  'cvc',
  '*.cvc',
];

/** Longest string logged whole (a key, a value, the message); a longer one is clipped. */
export const LOGGED_TEXT_MAX = 2_048;
/** Longest stack logged (give or take a line): its lines are clipped one by one, so a huge message keeps its frames. */
const LOGGED_STACK_MAX = 16_384;
/** Most entries logged of one array or object. */
const LOGGED_ENTRIES_MAX = 100;
/** Deepest nesting logged; a deeper array or object (or a circular one) is logged as `[Array]` or `[Object]`. */
const LOGGED_DEPTH_MAX = 8;
/** Characters of keys and strings one log call writes (give or take one clipped string): the rest is left out. */
const LOGGED_LINE_BUDGET = 65_536;

/**
 * `text` as logged: with the credentials of its URLs redacted and, when longer than `max`, cut to a prefix that
 * ends with an ellipsis and the original length (`abc… (5242880 chars)`), `max` characters in all.
 */
function boundText(text: string, max: number): string {
  if (text.length <= max) return text.includes('://') || text.includes('=') ? redactUrls(text) : text;
  const marker = `… (${text.length} chars)`;
  return redactCutText(text.slice(0, max - marker.length)) + marker;
}

/** A stack as logged: each line bounded, and lines past LOGGED_STACK_MAX left out (the marker says how long it was). */
function boundStack(stack: string): string {
  if (stack.length <= LOGGED_TEXT_MAX) return boundText(stack, LOGGED_TEXT_MAX);
  let bounded = '';
  let start = 0;
  while (start < stack.length && bounded.length < LOGGED_STACK_MAX) {
    const end = stack.indexOf('\n', start);
    const lineEnd = end < 0 ? stack.length : end;
    bounded += (start > 0 ? '\n' : '') + boundText(stack.slice(start, lineEnd), LOGGED_TEXT_MAX);
    start = lineEnd + 1;
  }
  return start < stack.length ? `${bounded}\n… (${stack.length} chars)` : bounded;
}

/** What a log call may still write. */
interface Budget {
  left: number;
}

/** `value` as logged, bounded; the same value when nothing needed to change (most lines allocate nothing). */
function boundValue(value: unknown, budget: Budget, depth: number): unknown {
  if (typeof value === 'string') {
    const text = boundText(value, LOGGED_TEXT_MAX);
    budget.left -= text.length;
    return text;
  }
  budget.left -= 1;
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= LOGGED_DEPTH_MAX) return Array.isArray(value) ? '[Array]' : '[Object]';
  if (value instanceof Error) return boundFields(pino.stdSerializers.err(value), budget, depth);
  // Bytes are logged as their kind and size, never one field per byte.
  if (ArrayBuffer.isView(value)) return `[${value.constructor.name} of ${value.byteLength} bytes]`;
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  // What JSON would write (a date's string), bounded in turn.
  if (typeof toJSON === 'function') return boundValue(toJSON.call(value), budget, depth + 1);
  return Array.isArray(value) ? boundItems(value, budget, depth) : boundFields(value, budget, depth);
}

/** An array as logged: its first items, bounded, and how many more there were. */
function boundItems(items: readonly unknown[], budget: Budget, depth: number): unknown[] {
  let copy: unknown[] | undefined;
  for (let i = 0; i < items.length; i++) {
    if (i >= LOGGED_ENTRIES_MAX || budget.left <= 0) {
      copy ??= items.slice(0, i);
      copy.push(`… ${items.length - i} more ${items.length - i === 1 ? 'item' : 'items'}`);
      break;
    }
    const item = items[i];
    const bounded = boundValue(item, budget, depth + 1);
    if (copy === undefined && bounded !== item) copy = items.slice(0, i);
    copy?.push(bounded);
  }
  return copy ?? (items as unknown[]);
}

/** An object as logged: its first own enumerable fields, keys and values bounded, and how many more there were. */
function boundFields(object: object, budget: Budget, depth: number): object {
  const source = object as Record<string, unknown>;
  const keys = Object.keys(source);
  let copy: Record<string, unknown> | undefined;
  const copyUpTo = (end: number) => {
    const fields: Record<string, unknown> = {};
    for (const key of keys.slice(0, end)) fields[boundText(key, LOGGED_TEXT_MAX)] = source[key];
    return fields;
  };
  for (let i = 0; i < keys.length; i++) {
    if (i >= LOGGED_ENTRIES_MAX || budget.left <= 0) {
      copy ??= copyUpTo(i);
      copy['…'] = `${keys.length - i} more ${keys.length - i === 1 ? 'field' : 'fields'}`;
      break;
    }
    const key = keys[i] as string;
    const value = source[key];
    const boundedKey = boundText(key, LOGGED_TEXT_MAX);
    budget.left -= boundedKey.length;
    let bounded: unknown;
    if (key === 'stack' && typeof value === 'string') {
      const stack = boundStack(value);
      budget.left -= stack.length;
      bounded = stack;
    } else bounded = boundValue(value, budget, depth + 1);
    if (copy === undefined && (bounded !== value || boundedKey !== key)) copy = copyUpTo(i);
    if (copy) copy[boundedKey] = bounded;
  }
  return copy ?? object;
}

/** The fields of one log call (or one child's bindings) as logged. */
function boundLogFields<T extends object>(fields: T): T {
  return boundFields(fields, { left: LOGGED_LINE_BUDGET }, 0) as T;
}

/** The message of a log call as logged. */
function boundMessage(message: unknown): unknown {
  return typeof message === 'string' ? boundText(message, LOGGED_TEXT_MAX) : message;
}

/** Creates the process logger of a service; its lines go to `destination` (stdout when not given). */
export function createLogger(options: { service: string; level: string; destination?: DestinationStream }): Logger {
  const logger = pino(
    {
      level: options.level,
      base: { service: options.service },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: boundLogFields },
      serializers: {
        msg: boundMessage,
        // The log formatter has serialized and bounded every error already, before serializers run: pino's own
        // error serializer would take the result for another error.
        err: (err: unknown) => err,
      },
    },
    options.destination,
  );
  // A child's bindings are serialized once, when it is made, without the log formatter: bound them there. Every
  // child inherits these from the process logger.
  const { child, setBindings } = logger;
  logger.child = function boundedChild(this: Logger, bindings, childOptions) {
    return child.call(this, boundLogFields(bindings), childOptions);
  } as Logger['child'];
  logger.setBindings = function boundedSetBindings(this: Logger, bindings) {
    setBindings.call(this, boundLogFields(bindings));
  };
  return logger;
}

export type { Logger };
