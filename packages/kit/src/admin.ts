// The operator API every service serves (billing.admin.v1.AdminService): see and replay the messages its
// consumers parked, and publish again the events it recorded since a time.

import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { type ConsumerSpec, listParkedEvents, parkedEventKey, replayParkedEvent } from './consumer.ts';
import { queryBound } from './db.ts';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, quote } from './errors.ts';
import { mutate } from './mutation.ts';
import { listPage } from './pagination.ts';
import type { ServiceContext } from './service-context.ts';

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

    republishEvents: (req) =>
      mutate(context, M.republishEvents, req, async ({ em }) => {
        if (!req.sinceTime) {
          throw new InvalidArgumentError('since_time is required', [{ field: 'since_time', description: 'required' }]);
        }
        const rows = await queryBound<{ n: string }>(
          em,
          `with cleared as (update outbox_event set published_at = null where recorded_at >= $1 returning 1)
           select count(*) as n from cleared`,
          [timestampDate(req.sinceTime)],
        );
        return { count: BigInt(rows[0]?.n ?? 0) };
      }),
  };
}
