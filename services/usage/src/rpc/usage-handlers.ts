// The UsageService handlers: convert the request, call one use case, convert the result.

import { routeByCodec } from '@billing/kit/codec-route';
import { mutate } from '@billing/kit/mutation';
import type { ServiceContext } from '@billing/kit/service-context';
import { type IngestResult, IngestStatus, type UsageEvent } from '@billing/proto/billing/usage/v1/resources_pb';
import {
  IngestEventStreamResponseSchema,
  type IngestEventsRequest,
  IngestEventsResponseSchema,
  UsageService,
} from '@billing/proto/billing/usage/v1/usage_service_pb';
import { create } from '@bufbuild/protobuf';
import type { ConnectRouter, ServiceImpl } from '@connectrpc/connect';
import type { SentEvent } from '../domain/usage-event.ts';
import {
  checkBatchSize,
  validateAmendEvent,
  validateGetPeriodUsage,
  validateListEvents,
  validateQueryUsage,
  validateVoidEvent,
} from '../domain/validate.ts';
import { amendEvent } from '../service/amend-event.ts';
import { getPeriodUsage } from '../service/get-period-usage.ts';
import { countResults, ingestEvents, ingestInTransaction } from '../service/ingest-events.ts';
import { type IngestQueue, ingestQueue } from '../service/ingest-queue.ts';
import { listEvents } from '../service/list-events.ts';
import { queryUsage } from '../service/query-usage.ts';
import { voidEvent } from '../service/void-event.ts';
import {
  binaryIngestEventStream,
  binaryIngestEvents,
  decodeSentEvents,
  parseIngestEventsRequest,
} from './binary-ingestion.ts';
import { fromProtoUsageEvent, toProtoEventPage, toProtoPeriodUsage, toProtoUsageBuckets } from './convert.ts';

/** How ingestion requests are written: up to 2 transactions at once, up to 8 waiting requests in each. */
const INGEST_GROUPING = { concurrency: 2, maxGroupRequests: 8 };
/** Most problems reported by one ingestion stream. */
const MAX_STREAM_PROBLEMS = 10_000;

/** The SentEvents of a request's UsageEvent messages. */
const fromProtoUsageEvents = (events: readonly UsageEvent[]) => events.map(fromProtoUsageEvent);

/**
 * The two ingestion RPCs over events of any decoding (T: UsageEvent messages, or the bytes of each, see
 * binary-ingestion.ts), `decode` turning a request's events into SentEvents (`offset` numbers the first).
 */
function ingestionHandlers<T>(
  context: ServiceContext,
  queue: IngestQueue,
  decode: (events: readonly T[], offset: number) => SentEvent[],
) {
  return {
    // request_id is optional here: every event's id already makes ingestion idempotent. With one, the request
    // is written alone, with its answer kept for retries (the request as protobuf-es decodes it, `asMessage`, is
    // what a retry must repeat).
    async ingestEvents(req: { requestId: string; events: readonly T[] }, asMessage: () => IngestEventsRequest) {
      checkBatchSize(req.events.length, 'events');
      if (req.requestId) {
        const request = asMessage();
        return mutate(context, UsageService.method.ingestEvents, request, async ({ em, now }) => {
          const [results = []] = await ingestEvents(
            em,
            [{ events: fromProtoUsageEvents(request.events), offset: 0 }],
            now,
          );
          return { results, ...countResults(results) };
        });
      }
      const results = await queue.ingest({ events: decode(req.events, 0), offset: 0 });
      return create(IngestEventsResponseSchema, { results, ...countResults(results) });
    },

    async ingestEventStream(requests: AsyncIterable<{ events: readonly T[] }>) {
      const totals = { acceptedCount: 0n, duplicateCount: 0n, duplicateMismatchCount: 0n, rejectedCount: 0n };
      const problems: IngestResult[] = [];
      let offset = 0;
      let truncated = false;
      for await (const batch of requests) {
        checkBatchSize(batch.events.length, `batch at event ${offset}: events`);
        const results = await queue.ingest({ events: decode(batch.events, offset), offset });
        offset += batch.events.length;
        const counts = countResults(results);
        totals.acceptedCount += BigInt(counts.acceptedCount);
        totals.duplicateCount += BigInt(counts.duplicateCount);
        totals.duplicateMismatchCount += BigInt(counts.duplicateMismatchCount);
        totals.rejectedCount += BigInt(counts.rejectedCount);
        for (const result of results) {
          if (result.status === IngestStatus.ACCEPTED) continue;
          if (problems.length < MAX_STREAM_PROBLEMS) problems.push(result);
          else truncated = true;
        }
      }
      return create(IngestEventStreamResponseSchema, { ...totals, problems, problemsTruncated: truncated });
    },
  };
}

/**
 * Serves UsageService on `router`. Ingestion requests in protobuf binary have their events decoded by
 * binary-ingestion.ts; JSON ones are decoded by protobuf-es, like every other request.
 */
export function routeUsageService(router: ConnectRouter, context: ServiceContext): void {
  const queue = ingestQueue(
    (batches) => ingestInTransaction(context.db, batches, context.clock.now()),
    INGEST_GROUPING,
  );
  const messages = ingestionHandlers<UsageEvent>(context, queue, fromProtoUsageEvents);
  const binary = ingestionHandlers<Uint8Array>(context, queue, decodeSentEvents);
  router.service(UsageService, usageHandlers(context));
  routeByCodec(
    router,
    { method: UsageService.method.ingestEvents, impl: (req) => messages.ingestEvents(req, () => req) },
    {
      method: binaryIngestEvents,
      impl: (req) => binary.ingestEvents(req, () => parseIngestEventsRequest(req)),
    },
  );
  routeByCodec(
    router,
    { method: UsageService.method.ingestEventStream, impl: (requests) => messages.ingestEventStream(requests) },
    { method: binaryIngestEventStream, impl: (requests) => binary.ingestEventStream(requests) },
  );
}

/** The UsageService RPCs but ingestion (routeUsageService serves those). */
function usageHandlers(context: ServiceContext): Partial<ServiceImpl<typeof UsageService>> {
  const read = () => context.db.fork();
  return {
    async listEvents(req) {
      return toProtoEventPage(await listEvents(read(), validateListEvents(req)));
    },

    amendEvent(req) {
      const input = validateAmendEvent(req);
      return mutate(context, UsageService.method.amendEvent, req, (scope) => amendEvent(scope, input));
    },

    voidEvent(req) {
      const input = validateVoidEvent(req);
      return mutate(context, UsageService.method.voidEvent, req, (scope) => voidEvent(scope, input));
    },

    async getPeriodUsage(req) {
      return toProtoPeriodUsage(await getPeriodUsage(read(), validateGetPeriodUsage(req)), context.clock.now());
    },

    async queryUsage(req) {
      return toProtoUsageBuckets(await queryUsage(read(), validateQueryUsage(req)), context.clock.now());
    },
  };
}
