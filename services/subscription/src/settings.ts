// The subscription service's own settings, beside those every service has.
import { ConfigError, type ConfigOf, parsers, setting } from '@billing/kit/config';

/** Settings of the subscription service. */
export const subscriptionSettings = {
  catalogUrl: setting({
    env: 'CATALOG_URL',
    description: 'base URL of the catalog API, which plans are validated against',
    default: 'http://127.0.0.1:7101',
    parse: parsers.url('http', 'https'),
  }),
  testClocks: setting({
    env: 'SUBSCRIPTION_TEST_CLOCKS',
    description: 'allow test clocks (S14); refused when BILLING_ENVIRONMENT is production',
    default: false,
    parse: parsers.boolean,
  }),
  environment: setting({
    env: 'BILLING_ENVIRONMENT',
    description: 'development, staging or production',
    default: 'development',
    parse: parsers.oneOf('development', 'staging', 'production'),
  }),
  billingClockIntervalMs: setting({
    env: 'BILLING_CLOCK_INTERVAL',
    description: 'how often the billing clock looks for subscriptions due',
    default: 10_000,
    shownDefault: '10s',
    parse: parsers.duration,
  }),
};

/** Refuses combinations that must never run: test clocks in production. */
export function checkSubscriptionSettings(config: ConfigOf<typeof subscriptionSettings>): void {
  if (config.testClocks && config.environment === 'production') {
    throw new ConfigError('SUBSCRIPTION_TEST_CLOCKS: test clocks are refused in production');
  }
}
