// Structured JSON logs (pino) on stdout, one object per line, with secrets redacted. Each call gets a child
// logger carrying its request id and RPC method, so that every line about one call can be found together.

import { randomUUID } from 'node:crypto';
import { type ContextValues, createContextKey } from '@connectrpc/connect';
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

// Keys whose values are secrets wherever they appear, in camelCase (protobuf-es, our code) and snake_case
// (proto JSON, headers, Stripe payloads).
const SECRET_KEYS = [
  'authorization',
  'cookie',
  'password',
  'secret',
  'token',
  'apiKey',
  'api_key',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'clientSecret',
  'client_secret',
  'stripeSecretKey',
  'stripe_secret_key',
  'stripeApiKey',
  'webhookSecret',
  'webhook_secret',
  'cardNumber',
  'card_number',
  'cvc',
  'cvv',
];

/**
 * Paths never written to logs: credentials (authorization and cookie headers, passwords, API keys, Stripe
 * keys and webhook secrets) and card data, at the top level and one or two levels down.
 */
export const REDACTED_PATHS: readonly string[] = [
  ...SECRET_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]),
  // Header maps as Node and fetch name them, and the headers Stripe and API gateways use.
  ...['headers', 'header', 'req.headers'].flatMap((h) => [
    `${h}.authorization`,
    `${h}.cookie`,
    `${h}["set-cookie"]`,
    `${h}["x-api-key"]`,
    `${h}["stripe-signature"]`,
  ]),
  'card.number',
  '*.card.number',
  'card.cvc',
  '*.card.cvc',
];

const CENSOR = '[redacted]';

// Stripe secret and restricted keys and webhook secrets inside free text (an error message quoting a request,
// a log message built by string concatenation). Publishable keys are not secret and stay readable.
const SECRET_PATTERN = /\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]+|\bwhsec_[0-9A-Za-z]+/g;

function scrub(text: string): string {
  // A cheap test first: almost no line contains a key, and the regular expression costs more than this.
  return text.includes('_live_') || text.includes('_test_') || text.includes('whsec_')
    ? text.replace(SECRET_PATTERN, CENSOR)
    : text;
}

/** Options of the process logger. */
export interface LoggerOptions {
  /** Service name, on every line. */
  service: string;
  /** Lowest level written: fatal, error, warn, info, debug, trace or silent. */
  level: string;
  /** Where lines go; stdout when absent (tests pass a stream to read them). */
  destination?: DestinationStream;
}

/** Creates the process logger of a service: JSON lines on stdout, ISO timestamps, level names, redaction. */
export function createLogger(options: LoggerOptions): Logger {
  const logger = pino(
    {
      level: options.level,
      base: { service: options.service },
      redact: { paths: [...REDACTED_PATHS], censor: CENSOR },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: {
        // The stack stays (it is what an unexpected error is logged for), without keys quoted in messages.
        err(err: Error) {
          const serialized = pino.stdSerializers.err(err);
          serialized.message = scrub(serialized.message);
          serialized.stack = scrub(serialized.stack);
          return serialized;
        },
      },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? scrub(a) : a)) as Parameters<typeof method>;
          method.apply(this, scrubbed);
        },
      },
    },
    options.destination ?? pino.destination(1),
  );
  return logger;
}

/** The request-id header a caller may send (and which every response echoes). */
export const REQUEST_ID_HEADER = 'x-request-id';

// An id is echoed in headers and logs: anything longer or outside printable ASCII is replaced, not trusted.
const VALID_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** What identifies a call for logging: its method, and the request's message and headers if known. */
export interface CallInfo {
  /** The RPC, `package.Service/Method`. */
  method: string;
  /** The request message (a mutation's `request_id` field is its idempotency key). */
  message?: unknown;
  /** The request headers. */
  header?: Headers;
}

/**
 * The request id of a call: the message's `request_id` field if it has one, else the `x-request-id`
 * header, else a new random id. Values that are too long or not printable ASCII are not used.
 */
export function requestIdOf(call: Omit<CallInfo, 'method'>): string {
  const message = call.message;
  if (typeof message === 'object' && message !== null && 'requestId' in message) {
    const id = message.requestId;
    if (typeof id === 'string' && VALID_REQUEST_ID.test(id)) return id;
  }
  const header = call.header?.get(REQUEST_ID_HEADER);
  if (header && VALID_REQUEST_ID.test(header)) return header;
  return randomUUID();
}

/** A child of `logger` for one call: every line carries `request_id` and `method`. */
export function requestLogger(logger: Logger, call: CallInfo & { requestId?: string }): Logger {
  return logger.child({ request_id: call.requestId ?? requestIdOf(call), method: call.method });
}

/** Where the error interceptor leaves the call's logger for handlers (see `callLogger`). */
export const callLoggerKey = createContextKey<Logger | undefined>(undefined, { description: 'the logger of a call' });

/** The logger of the current call (with its request id), or `fallback` outside the error interceptor. */
export function callLogger(context: { values: ContextValues }, fallback: Logger): Logger {
  return context.values.get(callLoggerKey) ?? fallback;
}
