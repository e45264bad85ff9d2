// The UsageService handlers: convert the request, call the use case, convert the result.
import { InvalidArgumentError, NotFoundError } from '@billing/kit/errors';
import { mutate } from '@billing/kit/mutation';
import { listPage } from '@billing/kit/pagination';
import type { ServiceContext } from '@billing/kit/runtime';
import { type IngestResult, IngestStatus } from '@billing/proto/billing/usage/v1/resources_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import type { JsonObject } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { findMeter, listEvents } from '../adapter/usage-store.ts';
import { MAX_BATCH_SIZE } from '../domain/usage-event.ts';
import { countResults, ingestEvents } from '../service/ingest-events.ts';
import { periodUsage } from '../service/period-usage.ts';

/** Most problems reported by one ingestion stream. */
const MAX_STREAM_PROBLEMS = 10_000;

function checkBatchSize(size: number, field: string): void {
  if (size > MAX_BATCH_SIZE) {
    throw new InvalidArgumentError(`at most ${MAX_BATCH_SIZE} events per batch`, [
      { field, description: `at most ${MAX_BATCH_SIZE} events, got ${size}` },
    ]);
  }
}

/** Builds the UsageService implementation (the RPCs of later steps answer UNIMPLEMENTED until they land). */
export function usageHandlers(context: ServiceContext): Partial<ServiceImpl<typeof UsageService>> {
  const ingest = async (events: Parameters<typeof ingestEvents>[1]) => {
    checkBatchSize(events.length, 'events');
    const results = await context.db.transaction((em) => ingestEvents(em, events, context.clock.now()));
    return { results, ...countResults(results) };
  };
  return {
    // request_id is optional here: every event's id already makes ingestion idempotent.
    ingestEvents: (req) =>
      req.requestId
        ? mutate(context, UsageService.method.ingestEvents, req, async ({ em, now }) => {
            checkBatchSize(req.events.length, 'events');
            const results = await ingestEvents(em, req.events, now);
            return { results, ...countResults(results) };
          })
        : ingest(req.events),

    async ingestEventStream(requests) {
      const totals = { acceptedCount: 0n, duplicateCount: 0n, duplicateMismatchCount: 0n, rejectedCount: 0n };
      const problems: IngestResult[] = [];
      let offset = 0;
      let truncated = false;
      for await (const batch of requests) {
        checkBatchSize(batch.events.length, `batch at event ${offset}: events`);
        const results = await context.db.transaction((em) =>
          ingestEvents(em, batch.events, context.clock.now(), offset),
        );
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
      return { ...totals, problems, problemsTruncated: truncated };
    },

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
        })),
        nextPageToken,
      };
    },

    async getPeriodUsage(req) {
      if (!req.period?.startTime || !req.period.endTime) {
        throw new InvalidArgumentError('period is required', [
          { field: 'period', description: 'start_time and end_time are required' },
        ]);
      }
      const start = timestampDate(req.period.startTime);
      const end = timestampDate(req.period.endTime);
      if (end.getTime() <= start.getTime()) {
        throw new InvalidArgumentError('period ends before it starts', [
          { field: 'period.end_time', description: 'must be after start_time' },
        ]);
      }
      const em = context.db.fork();
      const meter = await findMeter(em, req.meterKey);
      if (!meter) throw new NotFoundError('METER_NOT_FOUND', `no meter "${req.meterKey}"`);
      const { value, eventCount } = await periodUsage(em, meter, req.customerExternalId, start, end);
      return {
        value: value.toFixed(),
        eventCount: BigInt(eventCount),
        asOfTime: timestampFromDate(context.clock.now()),
      };
    },
  };
}
