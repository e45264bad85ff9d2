// The UsageService handlers: convert the request, call the use case, convert the result.

import { routeByCodec } from '@billing/kit/codec-route';
import type { Em } from '@billing/kit/db';
import { InvalidArgumentError, NotFoundError } from '@billing/kit/errors';
import { mutate } from '@billing/kit/mutation';
import { listPage } from '@billing/kit/pagination';
import type { ServiceContext } from '@billing/kit/runtime';
import { isTimeZone } from '@billing/kit/time-zone';
import { Decimal } from '@billing/money';
import type { Period } from '@billing/proto/billing/type/v1/types_pb';
import { type IngestResult, IngestStatus, type UsageEvent } from '@billing/proto/billing/usage/v1/resources_pb';
import {
  IngestEventStreamResponseSchema,
  type IngestEventsRequest,
  IngestEventsResponseSchema,
  UsageService,
  Window,
} from '@billing/proto/billing/usage/v1/usage_service_pb';
import { create, type JsonObject } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ConnectRouter, ServiceImpl } from '@connectrpc/connect';
import { findMeter, lateEventCount, listEvents } from '../adapter/usage-store.ts';
import { MAX_BATCH_SIZE, type SentEvent, sentEvent } from '../domain/usage-event.ts';
import { usageWindows } from '../domain/windows.ts';
import { aggregateUsage } from '../service/aggregate-usage.ts';
import { correctEvent } from '../service/correct-event.ts';
import { countResults, ingestEvents, ingestInTransaction } from '../service/ingest-events.ts';
import { type IngestQueue, ingestQueue } from '../service/ingest-queue.ts';
import {
  binaryIngestEventStream,
  binaryIngestEvents,
  decodeSentEvents,
  parseIngestEventsRequest,
} from './binary-ingestion.ts';

/** How ingestion requests are written: up to 2 transactions at once, up to 8 waiting requests in each. */
const INGEST_GROUPING = { concurrency: 2, maxGroupRequests: 8 };
/** Most problems reported by one ingestion stream. */
const MAX_STREAM_PROBLEMS = 10_000;
const DAY = 24 * 3_600_000;
/** Longest range of a usage query. */
const MAX_QUERY_MS = 400 * DAY;
/** Longest range of a usage query by the hour. */
const MAX_HOURLY_QUERY_MS = 31 * DAY;

/** A required, forward period of a request. */
function readRange(period: Period | undefined, field: string): [Date, Date] {
  if (!period?.startTime || !period.endTime) {
    throw new InvalidArgumentError(`${field} is required`, [
      { field, description: 'start_time and end_time are required' },
    ]);
  }
  const start = timestampDate(period.startTime);
  const end = timestampDate(period.endTime);
  if (end.getTime() <= start.getTime()) {
    throw new InvalidArgumentError(`${field} ends before it starts`, [
      { field: `${field}.end_time`, description: 'must be after start_time' },
    ]);
  }
  return [start, end];
}

/** The meter, or NOT_FOUND. */
async function requireMeter(em: Em, key: string) {
  const meter = await findMeter(em, key);
  if (!meter) throw new NotFoundError('METER_NOT_FOUND', `no meter "${key}"`);
  return meter;
}

function checkBatchSize(size: number, field: string): void {
  if (size > MAX_BATCH_SIZE) {
    throw new InvalidArgumentError(`at most ${MAX_BATCH_SIZE} events per batch`, [
      { field, description: `at most ${MAX_BATCH_SIZE} events, got ${size}` },
    ]);
  }
}

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
          const [results = []] = await ingestEvents(em, [{ events: request.events.map(sentEvent), offset: 0 }], now);
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
  const messages = ingestionHandlers<UsageEvent>(context, queue, (events) => events.map(sentEvent));
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

/**
 * The UsageService RPCs but ingestion (routeUsageService serves those); the RPCs of later steps answer
 * UNIMPLEMENTED until they land.
 */
function usageHandlers(context: ServiceContext): Partial<ServiceImpl<typeof UsageService>> {
  return {
    async listEvents(req) {
      if (!req.customerExternalId) {
        throw new InvalidArgumentError('customer_external_id is required', [
          { field: 'customer_external_id', description: 'required' },
        ]);
      }
      const em = context.db.fork();
      const meter = req.meterKey ? await findMeter(em, req.meterKey) : undefined;
      if (req.meterKey && !meter) throw new NotFoundError('METER_NOT_FOUND', `no meter "${req.meterKey}"`);
      const { items, nextPageToken } = await listPage(
        req,
        { c: req.customerExternalId, t: req.type, m: req.meterKey, r: req.range, v: req.includeVoided },
        (page) =>
          listEvents(em, {
            customer: req.customerExternalId,
            type: req.type || undefined,
            meter,
            from: req.range?.startTime ? timestampDate(req.range.startTime) : undefined,
            to: req.range?.endTime ? timestampDate(req.range.endTime) : undefined,
            includeVoided: req.includeVoided,
            after: page.after === undefined ? undefined : (JSON.parse(page.after) as [string, string]),
            limit: page.size + 1,
          }),
        (row) => JSON.stringify([row.time.toISOString(), row.id]),
      );
      return {
        events: items.map((row) => ({
          event: {
            id: row.id,
            customerExternalId: req.customerExternalId,
            type: row.type,
            eventTime: timestampFromDate(row.time),
            properties: row.properties as JsonObject,
          },
          ingestTime: timestampFromDate(row.ingestedAt),
          voided: row.voided,
          late: row.late,
        })),
        nextPageToken,
      };
    },

    amendEvent: (req) =>
      mutate(context, UsageService.method.amendEvent, req, (scope) =>
        correctEvent(
          scope,
          req.customerExternalId,
          req.eventId,
          {
            kind: 'amend',
            time: req.eventTime ? timestampDate(req.eventTime) : undefined,
            properties: req.properties,
          },
          req.reason,
        ),
      ),

    voidEvent: (req) =>
      mutate(context, UsageService.method.voidEvent, req, (scope) =>
        correctEvent(scope, req.customerExternalId, req.eventId, { kind: 'void' }, req.reason),
      ),

    async getPeriodUsage(req) {
      const [start, end] = readRange(req.period, 'period');
      const em = context.db.fork();
      const meter = await requireMeter(em, req.meterKey);
      const [total] = await aggregateUsage(em, {
        meter,
        customer: req.customerExternalId,
        windows: [[start, end]],
        groupBy: [],
        filters: [],
      });
      return {
        value: (total?.value ?? new Decimal(0)).toFixed(),
        eventCount: BigInt(total?.eventCount ?? 0),
        lateEventCount: BigInt(await lateEventCount(em, meter, req.customerExternalId, start, end)),
        asOfTime: timestampFromDate(context.clock.now()),
      };
    },

    async queryUsage(req) {
      const [start, end] = readRange(req.range, 'range');
      const violations: { field: string; description: string }[] = [];
      const zone = req.timeZone || 'UTC';
      if (!isTimeZone(zone)) violations.push({ field: 'time_zone', description: `unknown time zone "${zone}"` });
      if (end.getTime() - start.getTime() > MAX_QUERY_MS)
        violations.push({ field: 'range', description: 'at most 400 days' });
      if (req.window === Window.HOUR && end.getTime() - start.getTime() > MAX_HOURLY_QUERY_MS) {
        violations.push({ field: 'range', description: 'at most 31 days with hourly windows' });
      }
      if (violations.length > 0) throw new InvalidArgumentError('the query is not valid', violations);
      const em = context.db.fork();
      const meter = await requireMeter(em, req.meterKey);
      req.groupBy.forEach((d, i) => {
        if (!meter.groupBy.includes(d))
          violations.push({ field: `group_by[${i}]`, description: `the meter has no dimension "${d}"` });
      });
      req.filters.forEach((f, i) => {
        if (!meter.groupBy.includes(f.dimension)) {
          violations.push({
            field: `filters[${i}].dimension`,
            description: `the meter has no dimension "${f.dimension}"`,
          });
        }
      });
      if (violations.length > 0) throw new InvalidArgumentError('the query is not valid', violations);
      const windows = usageWindows(start, end, req.window, zone);
      const values = await aggregateUsage(em, {
        meter,
        customer: req.customerExternalId,
        windows,
        groupBy: req.groupBy,
        filters: req.filters,
      });
      return {
        buckets: values.map((v) => {
          const [from, to] = windows[v.window] ?? [start, end];
          return {
            window: { startTime: timestampFromDate(from), endTime: timestampFromDate(to) },
            group: v.group,
            value: v.value.toFixed(),
          };
        }),
        asOfTime: timestampFromDate(context.clock.now()),
      };
    },
  };
}
