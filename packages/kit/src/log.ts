// Structured JSON logs (pino) with secrets redacted; request-scoped children carry the request id.
import { type Logger, pino } from 'pino';

/** Paths never written to logs: credentials, payment secrets and card data. */
const REDACT = [
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

/** Creates the process logger of a service. */
export function createLogger(options: { service: string; level: string }): Logger {
  return pino({
    level: options.level,
    base: { service: options.service },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

export type { Logger };
