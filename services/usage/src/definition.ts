// The usage service as the runtime runs it: its data, its API, its consumers and its partition upkeep.
import type { Subscription } from '@billing/kit/bus';
import { startPeriodic } from '@billing/kit/periodic';
import type { ServiceDefinition } from '@billing/kit/runtime';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { USAGE_ENTITIES } from './adapter/entities.ts';
import { ensureMonthlyPartitions } from './adapter/usage-event-repository.ts';
import { catalogMetersConsumer } from './consumers/catalog-meters.ts';
import { subscriptionPeriodsConsumer } from './consumers/subscription-periods.ts';
import { RETENTION_MS } from './domain/usage-event.ts';
import { USAGE_MIGRATIONS } from './migrations/index.ts';
import { routeUsageService } from './rpc/usage-handlers.ts';
import { publishDeltas } from './service/publish-deltas.ts';

const DAY = 24 * 3600 * 1000;
/** How often ingested usage is published as deltas. */
const DELTA_INTERVAL_MS = 250;

/** The usage service definition. */
export const usageService: ServiceDefinition = {
  name: 'usage',
  defaultPort: 7103,
  entities: USAGE_ENTITIES,
  migrations: USAGE_MIGRATIONS,
  services: [UsageService],
  routes(router, context) {
    routeUsageService(router, context);
  },
  consumers: () => [catalogMetersConsumer, subscriptionPeriodsConsumer],
  // Meter deltas go out per customer and meter every 250 ms: kept forever they would be most of the database.
  // Each carries the period's new value, so a week of them is enough to replay.
  outboxRetentionMs: 7 * DAY,
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
    // The rollup log and pending increments are rows, and a pass folds and publishes in one transaction: nothing
    // is lost when a pass or the process stops.
    const publisher = startPeriodic({
      name: 'usage delta publisher',
      intervalMs: DELTA_INTERVAL_MS,
      run: () => publishDeltas(context.db, context.clock.now()),
      afterWork: () => context.relay.notify(),
      logger: context.logger,
    });
    return [upkeep, publisher];
  },
};
