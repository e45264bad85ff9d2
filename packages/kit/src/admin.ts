// The operator API every service serves (billing.admin.v1.AdminService): see and replay the messages its
// consumers parked, and publish again the events it recorded in a time range. No caller is authorized yet (the
// security issue brings it), so a service's port must not be reachable from outside its cluster.

import { AdminService, type RepublishEventsRequest } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { type Timestamp, timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, type ServiceImpl } from '@connectrpc/connect';
import { type ConsumerSpec, listParkedEvents, parkedEventKey, replayParkedEvent } from './consumer.ts';
import { type Em, queryBound } from './db.ts';
import { DomainError, FailedPreconditionError, InvalidArgumentError, NotFoundError, quote } from './errors.ts';
import { mutate } from './mutation.ts';
import { holdsUnpublishedBefore, type RecordedRange, republishRecorded } from './outbox.ts';
import { listPage } from './pagination.ts';
import type { ServiceContext } from './service-context.ts';

/** The longest time range one RepublishEvents may cover: 24 hours. */
export const MAX_REPUBLISH_SPAN_MS = 24 * 60 * 60 * 1000;
/** The shortest time between two republishes of a service (any callers, any replicas): 10 minutes. */
export const REPUBLISH_INTERVAL_MS = 10 * 60 * 1000;

/** The caller asked for more than the service grants for now; it may retry later. */
class ResourceExhaustedError extends DomainError {
  readonly code = Code.ResourceExhausted;
}

// Accepted republishes are told apart by their idempotency records, which the call's transaction writes with
// its effect (a refused call leaves none), on every replica alike; one republish at a time takes this lock to
// read them, so that two calls at once never both pass.
const REPUBLISH_SCOPE = `${AdminService.typeName}/${AdminService.method.republishEvents.name}`;
const REPUBLISH_LOCK = 'billing.outbox.republish';

/** A Timestamp in nanoseconds since the epoch, exactly. */
const nanosOf = (t: Timestamp) => t.seconds * 1_000_000_000n + BigInt(t.nanos);

const INVALID_REPUBLISH = 'the republish is not valid';

/**
 * The range of a RepublishEvents request: both ends required, `until_time` after `since_time` and at most
 * MAX_REPUBLISH_SPAN_MS after it (the request guard has refused times outside the Timestamp range already).
 */
function republishRange(req: RepublishEventsRequest): RecordedRange {
  const { sinceTime, untilTime } = req;
  if (!sinceTime || !untilTime) {
    throw new InvalidArgumentError(INVALID_REPUBLISH, [
      ...(sinceTime ? [] : [{ field: 'since_time', description: 'required' }]),
      ...(untilTime ? [] : [{ field: 'until_time', description: 'required' }]),
    ]);
  }
  const span = nanosOf(untilTime) - nanosOf(sinceTime);
  if (span <= 0n) {
    throw new InvalidArgumentError(INVALID_REPUBLISH, [
      { field: 'until_time', description: 'must be after since_time' },
    ]);
  }
  if (span > BigInt(MAX_REPUBLISH_SPAN_MS) * 1_000_000n) {
    throw new InvalidArgumentError(INVALID_REPUBLISH, [
      { field: 'until_time', description: 'must be at most 24 hours after since_time' },
    ]);
  }
  return { since: timestampDate(sinceTime), until: timestampDate(untilTime) };
}

/**
 * Refuses a republish, in its transaction, within REPUBLISH_INTERVAL_MS of the previous one, or while the
 * previous one's events are not all published again (RESOURCE_EXHAUSTED, REPUBLISH_TOO_SOON or
 * REPUBLISH_IN_PROGRESS).
 */
async function refuseRepublishBeyondRate(em: Em, requestId: string): Promise<void> {
  await queryBound(em, 'select pg_advisory_xact_lock(hashtext($1))', [REPUBLISH_LOCK]);
  const [previous] = await queryBound<{ accepted_at: Date | string; now: Date | string }>(
    em,
    `select created_at as accepted_at, now() as now from idempotency_key
      where scope = $1 and request_id <> $2 order by created_at desc limit 1`,
    [REPUBLISH_SCOPE, requestId],
  );
  if (!previous) return;
  const acceptedAt = new Date(previous.accepted_at);
  const next = new Date(acceptedAt.getTime() + REPUBLISH_INTERVAL_MS);
  if (new Date(previous.now) < next) {
    throw new ResourceExhaustedError(
      'REPUBLISH_TOO_SOON',
      `a republish was accepted at ${acceptedAt.toISOString()}; the next may be from ${next.toISOString()}`,
    );
  }
  if (await holdsUnpublishedBefore(em, acceptedAt)) {
    throw new ResourceExhaustedError(
      'REPUBLISH_IN_PROGRESS',
      `the events of the republish accepted at ${acceptedAt.toISOString()} are not all published again yet ` +
        '(or older ones wait for the relay): retry once they are',
    );
  }
}

/** The AdminService of a service whose consumers are `consumers`. */
export function adminHandlers(
  context: ServiceContext,
  consumers: readonly ConsumerSpec[],
): ServiceImpl<typeof AdminService> {
  const M = AdminService.method;
  return {
    async listParkedEvents(req) {
      const { items, nextPageToken } = await listPage(
        req,
        { consumer: req.consumer },
        (page) =>
          listParkedEvents(context.db, {
            consumer: req.consumer || undefined,
            after: page.after,
            limit: page.size + 1,
          }),
        parkedEventKey,
      );
      return {
        parkedEvents: items.map((p) => ({
          consumer: p.consumer,
          eventId: p.eventId,
          subject: p.subject,
          error: p.error,
          attempts: p.attempts,
          parkTime: timestampFromDate(p.parkedTime),
        })),
        nextPageToken,
      };
    },

    replayParkedEvent(req) {
      const missing = [
        ...(req.consumer === '' ? [{ field: 'consumer', description: 'required' }] : []),
        ...(req.eventId === '' ? [{ field: 'event_id', description: 'required' }] : []),
      ];
      if (missing.length > 0) throw new InvalidArgumentError('the replay is not valid', missing);
      return mutate(context, M.replayParkedEvent, req, async ({ em }) => {
        const spec = consumers.find((c) => c.name === req.consumer);
        if (!spec) throw new NotFoundError('CONSUMER_NOT_FOUND', `this service has no consumer ${quote(req.consumer)}`);
        let applied: boolean;
        try {
          applied = await replayParkedEvent(em, spec, req.eventId);
        } catch (err) {
          const why = err instanceof Error ? err.message : String(err);
          throw new FailedPreconditionError('REPLAY_FAILED', `the replay failed, the event stays parked: ${why}`);
        }
        if (!applied)
          throw new NotFoundError(
            'PARKED_EVENT_NOT_FOUND',
            `no parked event ${quote(req.eventId)} of ${quote(req.consumer)}`,
          );
        return { applied };
      });
    },

    async republishEvents(req) {
      const range = republishRange(req);
      return mutate(context, M.republishEvents, req, async ({ em }) => {
        await refuseRepublishBeyondRate(em, req.requestId);
        return { count: BigInt(await republishRecorded(em, range)) };
      });
    },
  };
}
