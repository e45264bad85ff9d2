// Composition root of the subscription service process.
import { ConfigError } from '@billing/kit/config';
import { loadConfigOrExit, runServiceMain } from '@billing/kit/service-main';
import { catalogClient } from './adapter/catalog-client.ts';
import { subscriptionService } from './definition.ts';
import { checkSubscriptionSettings, subscriptionSettings } from './settings.ts';

const config = loadConfigOrExit(subscriptionSettings);
try {
  checkSubscriptionSettings(config);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`configuration error: ${err.message}`);
  process.exit(78);
}

await runServiceMain(
  subscriptionService({
    catalog: catalogClient(config.catalogUrl),
    testClocksEnabled: config.testClocks,
    billingClockIntervalMs: config.billingClockIntervalMs,
  }),
);
