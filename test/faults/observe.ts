// What a fault test reads from outside a service: its log lines, a condition that some process brings about
// read until it holds (and its last value when it never does, for the failure to show), and calls whose
// deadline only the server keeps.
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { type ServiceName, type ServiceProcess, waitFor } from '@billing/test/harness';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { HUNG_CALL_MS } from './load.ts';

/** How many times each value occurs, for a failure to show what happened and how often rather than a long list. */
export function tally(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/** Reads `read` until `ok` holds (polling as `waitFor` does) and returns that value; or, past `timeoutMs`, the last. */
export async function readUntil<T>(
  read: () => T | Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  try {
    return await waitFor(read, ok, timeoutMs);
  } catch {
    return read();
  }
}

/** One JSON log line of a service. */
export interface LogLine {
  /** Its level as a number (pino's: 30 info, 40 warn, 50 error, 60 fatal). */
  level: number;
  /** When it was written (`Date.now()` scale). */
  time: number;
  /** Its message. */
  msg?: string;
  /** Its other fields. */
  [field: string]: unknown;
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
/** pino's level of warnings. */
export const WARN = LEVELS.warn as number;
/** pino's level of errors. */
export const ERROR = LEVELS.error as number;

/** The JSON log lines a service process wrote to stdout so far (other lines are left out). */
export function logLines(process: ServiceProcess): LogLine[] {
  return process.stdout.flatMap((text) => {
    try {
      const line = JSON.parse(text) as Record<string, unknown>;
      const level = typeof line.level === 'number' ? line.level : (LEVELS[String(line.level)] ?? 0);
      const time = typeof line.time === 'number' ? line.time : Date.parse(String(line.time));
      return [{ ...line, level, time } as LogLine];
    } catch {
      return [];
    }
  });
}

/** The protocols a deadline travels in: gRPC's `grpc-timeout` header, Connect's `connect-timeout-ms`. */
export type DeadlineProtocol = 'gRPC' | 'Connect';

/** A read of each service, as a probe sends it. */
const READS: Record<
  ServiceName,
  (transport: Transport, options: { headers: Record<string, string>; signal: AbortSignal }) => Promise<unknown>
> = {
  catalog: (t, o) => createClient(CatalogService, t).listFeatures({ pageSize: 5 }, o),
  subscription: (t, o) => createClient(CustomerService, t).listCustomers({ pageSize: 5 }, o),
  usage: (t, o) => createClient(UsageService, t).listEvents({ customerExternalId: 'deadline-probe', pageSize: 5 }, o),
};

/** How a probe call ended, and after how long. */
export interface ProbeOutcome {
  /** The service called. */
  service: ServiceName;
  /** The protocol its deadline went in. */
  protocol: DeadlineProtocol;
  /** `ok`, the code it failed with, or `hung` when the probe gave up on it. */
  outcome: 'ok' | 'hung' | keyof typeof Code;
  /** The message of its error. */
  message?: string;
  /** From the call to its answer, in ms. */
  ms: number;
}

/**
 * A read of `service` with a deadline of `deadlineMs` that only the server keeps: the deadline goes in the header
 * of `protocol` and the client sets no timer of its own, so the call answers when the service does.
 */
export async function readWithServerDeadline(
  process: ServiceProcess,
  protocol: DeadlineProtocol,
  deadlineMs: number,
): Promise<ProbeOutcome> {
  const transport =
    protocol === 'gRPC'
      ? createGrpcTransport({ baseUrl: process.baseUrl })
      : createConnectTransport({ baseUrl: process.baseUrl, httpVersion: '2' });
  const headers: Record<string, string> =
    protocol === 'gRPC' ? { 'grpc-timeout': `${deadlineMs}m` } : { 'connect-timeout-ms': `${deadlineMs}` };
  const signal = AbortSignal.timeout(HUNG_CALL_MS);
  const started = Date.now();
  const { service } = process;
  try {
    await READS[service](transport, { headers, signal });
    return { service, protocol, outcome: 'ok', ms: Date.now() - started };
  } catch (err) {
    const error = ConnectError.from(err);
    const outcome = signal.aborted ? 'hung' : (Code[error.code] as keyof typeof Code);
    return { service, protocol, outcome, message: error.rawMessage, ms: Date.now() - started };
  }
}
