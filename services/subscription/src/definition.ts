// The subscription service as the runtime runs it: its data, its two APIs, its consumer of payment outcomes
// and its billing clock.
import { startPeriodic } from '@billing/kit/periodic';
import type { ServiceDefinition } from '@billing/kit/runtime';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import { SubscriptionService } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { SUBSCRIPTION_ENTITIES } from './adapter/entities.ts';
import { paymentOutcomesConsumer } from './consumers/payment-outcomes.ts';
import { SUBSCRIPTION_MIGRATIONS } from './migrations/index.ts';
import { customerHandlers } from './rpc/customer-handlers.ts';
import { subscriptionHandlers } from './rpc/subscription-handlers.ts';
import type { PlanCatalog } from './service/plan-catalog.ts';
import { runBillingClock } from './service/run-billing-clock.ts';

// What composing the service needs besides its definition: its settings and the client of the catalog it calls.
export { catalogClient } from './adapter/catalog-client.ts';
export { checkSubscriptionSettings, subscriptionSettings } from './settings.ts';

/** How the subscription service is set up. */
export interface SubscriptionOptions {
  /** The catalog it validates plans against. */
  catalog: PlanCatalog;
  /** Whether test clocks may be created. */
  testClocksEnabled: boolean;
  /** How often the billing clock looks for due subscriptions, in ms (0: never; tests drive it themselves). */
  billingClockIntervalMs: number;
}

/** The subscription service definition. */
export function subscriptionService(options: SubscriptionOptions): ServiceDefinition {
  return {
    name: 'subscription',
    defaultPort: 7102,
    entities: SUBSCRIPTION_ENTITIES,
    migrations: SUBSCRIPTION_MIGRATIONS,
    services: [CustomerService, SubscriptionService],
    routes(router, context) {
      router.service(CustomerService, customerHandlers(context));
      router.service(
        SubscriptionService,
        subscriptionHandlers(context, options.catalog, { enabled: options.testClocksEnabled }),
      );
    },
    consumers: () => [paymentOutcomesConsumer],
    async start(context) {
      if (options.billingClockIntervalMs <= 0) return [];
      const clock = startPeriodic({
        name: 'billing clock',
        intervalMs: options.billingClockIntervalMs,
        run: () => runBillingClock(context.db, () => context.clock.now()),
        afterWork: () => context.relay.notify(),
        logger: context.logger,
      });
      return [clock];
    },
  };
}
