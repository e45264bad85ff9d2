// `pnpm start`: the whole platform in one process, for trying it and for demos. Every service that exists
// runs on its own port, with its own schema in one embedded PGlite database (in .data/platform; a service with a
// database URL uses PostgreSQL instead), and one in-process bus (or NATS, if NATS_URL is set); the demo catalog
// is applied; how to call it is printed. `pnpm start` runs it with two V8 flags (docs/development.md, "At rest"):
// --liftoff-only keeps PGlite's WASM on the baseline compiler, whose code runs PostgreSQL's short statements about
// as fast, instead of recompiling hot functions with TurboFan, which peaked at 850 MB and left 60-80 MB resident;
// --max-semi-space-size=2 (MB) keeps the young generation small, which the idle polling of the services' relays
// and clocks otherwise grew to its largest within two minutes (60 MB more).
import { closeSync, openSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { catalogService } from '@billing/catalog';
import { catalogApply } from '@billing/cli/catalog-apply';
import { oneLine } from '@billing/cli/failure';
import { systemClock } from '@billing/kit/clock';
import { type ConfigOf, parsers, setting } from '@billing/kit/config';
import { createLogger } from '@billing/kit/log';
import { releaseStartupMemorySoon } from '@billing/kit/memory';
import type { RunningService, ServiceDefinition } from '@billing/kit/runtime';
import type { Listener } from '@billing/kit/server';
import {
  bindServicePortOrExit,
  commonSettings,
  createBus,
  EXIT_CONFIG,
  exitOnUnexpectedErrors,
  loadConfigOrExit,
  runServiceOrExit,
  runtimeBounds,
  serviceSettings,
  stopOnSignals,
} from '@billing/kit/service-main';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import {
  catalogClient,
  checkSubscriptionSettings,
  subscriptionService,
  subscriptionSettings,
} from '@billing/subscription';
import { usageService } from '@billing/usage';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { startBanner } from './banner.ts';

const platformSettings = {
  ...commonSettings,
  dataDir: setting({
    env: 'PLATFORM_DATA_DIR',
    description: 'PGlite folder of every service without a database URL, each in its own schema',
    default: '.data/platform',
    parse: parsers.string,
  }),
  demoCatalog: setting({
    env: 'PLATFORM_DEMO_CATALOG',
    description: 'catalog document applied at start; empty: none',
    default: fileURLToPath(new URL('../../../examples/catalog.yaml', import.meta.url)),
    shownDefault: 'examples/catalog.yaml',
    parse: parsers.string,
  }),
};

const config = loadConfigOrExit(platformSettings);
const subscriptionConfig = loadConfigOrExit(subscriptionSettings, checkSubscriptionSettings);
const logger = createLogger({ service: 'platform', level: config.logLevel });
exitOnUnexpectedErrors(logger);
// A demo catalog that cannot be read stops the start before anything is opened.
if (config.demoCatalog) {
  try {
    // A folder passes an access check, and for root so does any file: open it as the apply will read it.
    if (!statSync(config.demoCatalog).isFile()) throw new Error('not a file');
    closeSync(openSync(config.demoCatalog, 'r'));
  } catch {
    console.error(`PLATFORM_DEMO_CATALOG=${config.demoCatalog}: the file cannot be read`);
    process.exit(EXIT_CONFIG);
  }
}
const running: { definition: ServiceDefinition; service: RunningService }[] = [];
// Every service's port is bound before anything is opened: a port in use stops the start with one line naming
// its setting, with no database or bus opened.
const bound: {
  definition: ServiceDefinition;
  settings: ConfigOf<ReturnType<typeof serviceSettings>>;
  listener: Listener;
}[] = [];
const portOf = (name: string) => bound.find((b) => b.definition.name === name)?.listener.port;
// Every service that exists so far, in start order; each may call those before it, whose ports are bound by then.
const services: (() => ServiceDefinition)[] = [
  () => catalogService,
  () =>
    subscriptionService({
      catalog: catalogClient(`http://127.0.0.1:${portOf('catalog')}`),
      testClocksEnabled: subscriptionConfig.testClocks,
      billingClockIntervalMs: subscriptionConfig.billingClockIntervalMs,
    }),
  () => usageService,
];
for (const build of services) {
  const definition = build();
  const settings = loadConfigOrExit(serviceSettings(definition.name, definition.defaultPort));
  bound.push({ definition, settings, listener: await bindServicePortOrExit(definition, settings) });
}
const bus = await createBus(config, 'platform', logger);
for (const { definition, settings, listener } of bound) {
  const service = await runServiceOrExit(definition, {
    host: settings.host,
    port: settings.port,
    listener,
    databaseUrl: settings.databaseUrl,
    // One cluster for all: each costs about 130 MB resident however little it holds (docs/development.md).
    dataDir: config.dataDir,
    bus,
    logger: createLogger({ service: definition.name, level: config.logLevel }),
    clock: systemClock,
    ...runtimeBounds(config),
  });
  running.push({ definition, service });
}
stopOnSignals(logger, config.shutdownGraceMs, async () => {
  for (const { service } of [...running].reverse()) await service.stop();
  await bus.close();
});

const catalog = running.find((r) => r.definition.name === 'catalog')?.service;
if (catalog && config.demoCatalog) {
  const client = createClient(CatalogService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${catalog.port}` }));
  try {
    const lines = await catalogApply(client, { file: config.demoCatalog, dryRun: false, archiveMissing: false });
    logger.info({ document: config.demoCatalog, result: lines.join('; ') }, 'demo catalog applied');
  } catch (err) {
    // A demo catalog that cannot be read or applied is a setting in error: one line naming it, and the services
    // stop as on SIGTERM.
    console.error(
      `PLATFORM_DEMO_CATALOG=${config.demoCatalog}: ${oneLine(err instanceof Error ? err.message : String(err))}`,
    );
    for (const { service } of [...running].reverse()) await service.stop();
    await bus.close();
    process.exit(EXIT_CONFIG);
  }
}

process.stdout.write(
  startBanner(running.map(({ definition, service }) => ({ name: definition.name, port: service.port }))),
);
releaseStartupMemorySoon();
