// The usage service as the runtime runs it: its data, its API, its consumers and its partition upkeep.
import type { Subscription } from '@billing/kit/bus';
import type { ServiceContext, ServiceDefinition } from '@billing/kit/runtime';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { ensureMonthlyPartitions } from './adapter/usage-store.ts';
import { catalogMetersConsumer } from './consumers/catalog-meters.ts';
import { RETENTION_MS } from './domain/usage-event.ts';
import { USAGE_MIGRATIONS } from './migrations/index.ts';
import { usageHandlers } from './rpc/usage-handlers.ts';
import { publishDeltas } from './service/publish-deltas.ts';

const DAY = 24 * 3600 * 1000;
/** How often ingested usage is published as deltas. */
const DELTA_INTERVAL_MS = 250;

/** Runs the delta publisher every DELTA_INTERVAL_MS until stopped (pending deltas survive a stop). */
function startDeltaPublisher(context: ServiceContext): Subscription {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<void> = Promise.resolve();
  const tick = () => {
    pass = publishDeltas(context.db, context.clock.now())
      .then((messages) => {
        if (messages > 0) context.relay.notify();
      })
      .catch((err: unknown) => context.logger.warn({ err }, 'publishing usage deltas failed; will retry'))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, DELTA_INTERVAL_MS);
      });
  };
  timer = setTimeout(tick, DELTA_INTERVAL_MS);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await pass;
    },
  };
}

/** The usage service definition. */
export const usageService: ServiceDefinition = {
  name: 'usage',
  defaultPort: 7103,
  entities: [],
  migrations: USAGE_MIGRATIONS,
  services: [UsageService],
  routes(router, context) {
    router.service(UsageService, usageHandlers(context));
  },
  consumers: () => [catalogMetersConsumer],
  // Monthly partitions of raw events cover the retention and two months ahead; refreshed daily.
  async start(context) {
    const refresh = () => {
      const now = context.clock.now();
      return context.db.transaction((em) =>
        ensureMonthlyPartitions(
          em,
          new Date(now.getTime() - RETENTION_MS - 31 * DAY),
          new Date(now.getTime() + 62 * DAY),
        ),
      );
    };
    await refresh();
    const timer = setInterval(() => {
      refresh().catch((err: unknown) => context.logger.error({ err }, 'creating usage partitions failed'));
    }, DAY);
    timer.unref();
    const upkeep: Subscription = { stop: async () => clearInterval(timer) };
    return [upkeep, startDeltaPublisher(context)];
  },
};
