// `pnpm start`: the three services in one process share one embedded database, each in its own schema. The
// README's flow works across them (the subscription service asks the catalog while both use the one PGlite
// session; usage learns the demo catalog's meter through the in-process bus), and all of it is there again after
// a restart on the same folder.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import { SubscriptionService } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import { sparePort, waitFor } from '@billing/test/harness';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, expect, test } from '@jest/globals';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const dataRoot = mkdtempSync(join(tmpdir(), 'platform-'));

afterAll(() => {
  rmSync(dataRoot, { recursive: true, force: true });
});

interface Platform {
  catalog: ReturnType<typeof createClient<typeof CatalogService>>;
  customers: ReturnType<typeof createClient<typeof CustomerService>>;
  subscriptions: ReturnType<typeof createClient<typeof SubscriptionService>>;
  usage: ReturnType<typeof createClient<typeof UsageService>>;
  /** Stops the process with SIGTERM; resolves with its exit code. */
  stop(): Promise<number | null>;
}

/** Starts the platform's main on `dataDir` and waits until the demo catalog's `team` plan can be read. */
async function startPlatform(dataDir: string): Promise<Platform> {
  const [catalogPort, subscriptionPort, usagePort] = [await sparePort(), await sparePort(), await sparePort()];
  const child: ChildProcess = spawn(process.execPath, ['packages/platform/src/main.ts'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      LOG_LEVEL: 'warn',
      PLATFORM_DATA_DIR: dataDir,
      CATALOG_PORT: String(catalogPort),
      SUBSCRIPTION_PORT: String(subscriptionPort),
      USAGE_PORT: String(usagePort),
    },
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const transport = (port: number) => createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
  const platform: Platform = {
    catalog: createClient(CatalogService, transport(catalogPort)),
    customers: createClient(CustomerService, transport(subscriptionPort)),
    subscriptions: createClient(SubscriptionService, transport(subscriptionPort)),
    usage: createClient(UsageService, transport(usagePort)),
    stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
  try {
    await waitFor(
      () =>
        platform.catalog.getPlanVersion({ planKey: 'team' }).then(
          (answer) => answer.version?.planKey,
          () => undefined,
        ),
      (key) => key === 'team',
      60_000,
    );
  } catch (err) {
    await platform.stop();
    throw err;
  }
  return platform;
}

test('the README flow runs across the services sharing one embedded database, and survives a restart', async () => {
  const dataDir = join(dataRoot, 'platform');
  const now = new Date();
  const day = {
    startTime: timestampFromDate(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()))),
    endTime: timestampFromDate(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1))),
  };
  const usageOfAcme = { customerExternalId: 'acme', meterKey: 'build_minutes', period: day };

  const first = await startPlatform(dataDir);
  let subscriptionId: string;
  try {
    const created = await first.customers.createCustomer({
      requestId: 'c-1',
      customer: { externalId: 'acme', name: 'Acme', billing: { currencyCode: 'USD' } },
    });
    const customerId = created.customer?.id ?? '';
    const subscribed = await first.subscriptions.createSubscription({
      requestId: 's-1',
      customerId,
      planKey: 'team',
      quantities: [{ chargeKey: 'seats', quantity: '3' }],
    });
    subscriptionId = subscribed.subscription?.id ?? '';
    expect(subscribed.subscription?.planKey).toBe('team');

    const ingested = await first.usage.ingestEvents({
      events: [
        {
          id: 'b-1',
          customerExternalId: 'acme',
          type: 'build.finished',
          eventTime: timestampFromDate(now),
          properties: { minutes: 42, os: 'linux' },
        },
      ],
    });
    expect(ingested.acceptedCount).toBe(1);
    const counted = await waitFor(
      () => first.usage.getPeriodUsage(usageOfAcme),
      (answer) => answer.value === '42',
    );
    expect(counted.eventCount).toBe(1n);
  } finally {
    expect(await first.stop()).toBe(0);
  }

  const second = await startPlatform(dataDir);
  try {
    const kept = await second.subscriptions.getSubscription({ id: subscriptionId });
    expect(kept.subscription?.planKey).toBe('team');
    expect((await second.usage.getPeriodUsage(usageOfAcme)).value).toBe('42');
  } finally {
    expect(await second.stop()).toBe(0);
  }
});
