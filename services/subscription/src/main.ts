// Composition root of the subscription service process.
import { loadConfigOrExit, runServiceMain } from '@billing/kit/service-main';
import { catalogClient } from './adapter/catalog-client.ts';
import { subscriptionService } from './definition.ts';
import { checkSubscriptionSettings, subscriptionSettings } from './settings.ts';

const config = loadConfigOrExit(subscriptionSettings, checkSubscriptionSettings);

await runServiceMain(
  subscriptionService({
    catalog: catalogClient(config.catalogUrl),
    testClocksEnabled: config.testClocks,
    billingClockIntervalMs: config.billingClockIntervalMs,
  }),
);
