// Load on the three services through real clients, over the three protocols (the catalog over Connect, the
// subscription service over gRPC-Web on HTTP/1.1, usage over gRPC): loops of writes and reads that record every
// call, and a usage producer that sends every batch of events until the service answers it, as a producer that
// must lose nothing does, and keeps what the service confirmed it stored.
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { FeatureKind } from '@billing/proto/billing/catalog/v1/resources_pb';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import { IngestStatus } from '@billing/proto/billing/usage/v1/resources_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import type { ServiceName, ServiceProcess } from '@billing/test/harness';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type CallOptions, type Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';

/** Longest the load lets one call run before it gives up on it and records it as hung. */
export const HUNG_CALL_MS = 20_000;

/** One call the load made. */
export interface CallRecord {
  /** The worker that made it (`usage reads`, `usage producer`...). */
  worker: string;
  /** The service called. */
  service: ServiceName;
  /** The RPC. */
  rpc: string;
  /** When it started (`Date.now()`). */
  startedAt: number;
  /** When it ended; unset while it runs. */
  endedAt?: number;
  /** How it ended: `ok`, the code it failed with, or `hung` when the load gave up on it. */
  outcome?: 'ok' | 'hung' | Code;
  /** The message of the error it failed with. */
  message?: string;
}

/** The clients of the three services, one protocol each. */
export function platformClients(processes: Record<ServiceName, ServiceProcess>) {
  return {
    catalog: createClient(
      CatalogService,
      createConnectTransport({ baseUrl: processes.catalog.baseUrl, httpVersion: '2' }),
    ),
    customers: createClient(
      CustomerService,
      createGrpcWebTransport({ baseUrl: processes.subscription.baseUrl, httpVersion: '1.1' }),
    ),
    usage: createClient(UsageService, createGrpcTransport({ baseUrl: processes.usage.baseUrl })),
  };
}

/** The calls of every worker, and a way to record one. */
class CallLog {
  readonly calls: CallRecord[] = [];

  /** Runs `call`, recording how it ends; gives up on it after HUNG_CALL_MS. */
  async record<T>(
    worker: string,
    service: ServiceName,
    rpc: string,
    call: (options: CallOptions) => Promise<T>,
  ): Promise<T | undefined> {
    const record: CallRecord = { worker, service, rpc, startedAt: Date.now() };
    this.calls.push(record);
    const signal = AbortSignal.timeout(HUNG_CALL_MS);
    try {
      const result = await call({ signal });
      record.outcome = 'ok';
      return result;
    } catch (err) {
      const error = ConnectError.from(err);
      record.outcome = signal.aborted ? 'hung' : error.code;
      record.message = error.rawMessage;
      return undefined;
    } finally {
      record.endedAt = Date.now();
    }
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The events of one producer batch. */
const BATCH = 10;

/** Load on the platform, running until stopped. */
export interface PlatformLoad {
  /** Every call made so far, in the order they started. */
  readonly calls: readonly CallRecord[];
  /** The names of the workers. */
  readonly workers: readonly string[];
  /** The usage customer whose events the producer sends. */
  readonly customer: string;
  /** The event ids usage answered ACCEPTED or DUPLICATE for (stored, now or by an earlier attempt). */
  readonly confirmed: ReadonlySet<string>;
  /** The event ids usage answered anything else for (DUPLICATE_MISMATCH, REJECTED). */
  readonly refused: readonly string[];
  /** Stops the producer once the batch in hand is answered; resolves with the events it had sent in all. */
  stopProducer(): Promise<number>;
  /** Stops every worker (after its call in hand). */
  stop(): Promise<void>;
}

/** Starts the loops of writes and reads on every service, and the usage producer. */
export function startPlatformLoad(processes: Record<ServiceName, ServiceProcess>, label: string): PlatformLoad {
  const clients = platformClients(processes);
  const log = new CallLog();
  let stopped = false;
  let producerStopped = false;
  const confirmed = new Set<string>();
  const refused: string[] = [];
  let sent = 0;
  const customer = `fault-${label}`;

  // A worker repeats its steps until stopped, a little apart when they succeed and further apart when they fail,
  // so that an outage does not turn the load into a busy loop.
  const loop = async (steps: (() => Promise<unknown>)[]) => {
    while (!stopped) {
      for (const step of steps) {
        if (stopped) return;
        await pause((await step()) === undefined ? 100 : 20);
      }
    }
  };
  let features = 0;
  let customers = 0;
  const catalog = loop([
    () =>
      log.record('catalog writes', 'catalog', 'CreateFeature', (o) =>
        clients.catalog.createFeature(
          {
            requestId: `${label}-feature-${features}`,
            feature: { key: `f_${label}_${features++}`, name: 'Fault feature', kind: FeatureKind.BOOLEAN },
          },
          o,
        ),
      ),
    () =>
      log.record('catalog reads', 'catalog', 'ListFeatures', (o) => clients.catalog.listFeatures({ pageSize: 5 }, o)),
  ]);
  const subscription = loop([
    () =>
      log.record('subscription writes', 'subscription', 'CreateCustomer', (o) =>
        clients.customers.createCustomer(
          {
            requestId: `${label}-customer-${customers}`,
            customer: {
              externalId: `${label}-${customers++}`,
              name: 'Fault customer',
              billing: { currencyCode: 'USD' },
            },
          },
          o,
        ),
      ),
    () =>
      log.record('subscription reads', 'subscription', 'ListCustomers', (o) =>
        clients.customers.listCustomers({ pageSize: 5 }, o),
      ),
  ]);
  const usageReads = loop([
    () =>
      log.record('usage reads', 'usage', 'ListEvents', (o) =>
        clients.usage.listEvents({ customerExternalId: customer, pageSize: 5 }, o),
      ),
  ]);
  // The producer sends each batch again (same request id, same events) until it is answered: an answer lost in an
  // outage may hide a batch that was stored, which the retry then finds as duplicates.
  const producer = (async () => {
    for (let batch = 0; !stopped && !producerStopped; batch++) {
      const events = Array.from({ length: BATCH }, (_, i) => ({
        id: `${label}-${batch}-${i}`,
        customerExternalId: customer,
        type: 'fault.call',
        eventTime: timestampFromDate(new Date()),
        properties: { batch, index: i },
      }));
      sent += events.length;
      for (;;) {
        const answer = await log.record('usage producer', 'usage', 'IngestEvents', (o) =>
          clients.usage.ingestEvents({ requestId: `${label}-batch-${batch}`, events }, o),
        );
        if (answer) {
          for (const result of answer.results) {
            const ok = result.status === IngestStatus.ACCEPTED || result.status === IngestStatus.DUPLICATE;
            if (ok) confirmed.add(result.id);
            else refused.push(result.id);
          }
          break;
        }
        if (stopped) return;
        await pause(100);
      }
      await pause(20);
    }
  })();
  const workers = [
    'catalog writes',
    'catalog reads',
    'subscription writes',
    'subscription reads',
    'usage reads',
    'usage producer',
  ];
  return {
    calls: log.calls,
    workers,
    customer,
    confirmed,
    refused,
    async stopProducer() {
      producerStopped = true;
      await producer;
      return sent;
    },
    async stop() {
      stopped = true;
      await Promise.all([catalog, subscription, usageReads, producer]);
    },
  };
}

/** Every event id usage lists for `customer`, page by page. */
export async function listedEventIds(process: ServiceProcess, customer: string): Promise<string[]> {
  const usage = createClient(UsageService, createGrpcTransport({ baseUrl: process.baseUrl }));
  const ids: string[] = [];
  let pageToken = '';
  do {
    const page = await usage.listEvents({ customerExternalId: customer, pageSize: 500, pageToken });
    ids.push(...page.events.map((e) => e.event?.id ?? ''));
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return ids;
}
