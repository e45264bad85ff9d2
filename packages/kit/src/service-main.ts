// What every service's main.ts does: read its settings, bind its port, build its logger and bus, run it, and
// stop it gracefully on SIGTERM or SIGINT. A bad setting, a port in use, or an address it cannot listen on stops
// the process with one line naming the settings, each with its own exit code.
import type { Logger } from 'pino';
import type { EventBus } from './bus.ts';
import { systemClock } from './clock.ts';
import { ConfigError, type ConfigOf, loadConfig, parsers, setting } from './config.ts';
import { openDatabase } from './db.ts';
import { createLogger } from './log.ts';
import { releaseStartupMemorySoon } from './memory.ts';
import { createMemoryBus } from './memory-bus.ts';
import { connectNatsBus } from './nats-bus.ts';
import { runService, type ServiceDefinition } from './runtime.ts';
import { bindListener, ListenError, type Listener, PortInUseError } from './server.ts';

// Exit codes of a process that cannot start (from sysexits.h), so scripts and supervisors can tell them apart.
const EXIT_USAGE = 64;
const EXIT_PORT_IN_USE = 69;
// EX_OSERR: the system refused to listen on the address (not this machine's, or not allowed).
const EXIT_CANNOT_LISTEN = 71;
export const EXIT_CONFIG = 78;

/** The settings every service has, named after it (CATALOG_PORT, CATALOG_DATABASE_URL...). */
export function serviceSettings(name: string, defaultPort: number) {
  const upper = name.toUpperCase();
  return {
    host: setting({
      env: `${upper}_HOST`,
      description: 'interface to listen on',
      default: '127.0.0.1',
      parse: parsers.string,
    }),
    port: setting({
      env: `${upper}_PORT`,
      description: 'port of its Connect/gRPC/gRPC-Web API',
      default: defaultPort,
      parse: parsers.port,
    }),
    databaseUrl: setting({
      env: `${upper}_DATABASE_URL`,
      description: 'PostgreSQL URL of its own database; empty: embedded PGlite',
      default: '',
      parse: parsers.url('postgres', 'postgresql'),
    }),
    dataDir: setting({
      env: `${upper}_DATA_DIR`,
      description: 'PGlite folder when no database URL (`memory://` keeps nothing)',
      default: `.data/${name}`,
      parse: parsers.string,
    }),
  };
}

/** The settings shared by every process: bus, logs, shutdown. */
export const commonSettings = {
  natsUrl: setting<string[]>({
    env: 'NATS_URL',
    description: 'NATS servers, comma-separated; empty: the in-process bus (all-in-one mode)',
    default: [],
    shownDefault: '(empty)',
    parse: parsers.urls('nats', 'tls'),
  }),
  natsSubjectPrefix: setting({
    env: 'NATS_SUBJECT_PREFIX',
    description: 'prefix of every subject and stream name (environments sharing one NATS)',
    default: '',
    parse: parsers.string,
  }),
  logLevel: setting({
    env: 'LOG_LEVEL',
    description: 'fatal, error, warn, info, debug or trace',
    default: 'info',
    parse: parsers.oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
  }),
  shutdownGraceMs: setting({
    env: 'SHUTDOWN_GRACE',
    description: 'how long SIGTERM waits for calls in flight and the outbox',
    default: 10_000,
    shownDefault: '10s',
    parse: parsers.duration,
  }),
};

/** The bus the settings ask for: NATS JetStream, or the in-process bus when no NATS URL is set. */
export async function createBus(
  config: ConfigOf<typeof commonSettings>,
  name: string,
  logger: Logger,
): Promise<EventBus> {
  if (config.natsUrl.length === 0) return createMemoryBus();
  return connectNatsBus({ servers: config.natsUrl, subjectPrefix: config.natsSubjectPrefix, name, logger });
}

/**
 * Reads settings, and checks their combination with `check` if given (it throws a ConfigError), or exits with
 * the one line that says which is wrong.
 */
export function loadConfigOrExit<S extends Parameters<typeof loadConfig>[0]>(
  spec: S,
  check?: (config: ConfigOf<S>) => void,
): ConfigOf<S> {
  try {
    const config = loadConfig(spec);
    check?.(config);
    return config;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`configuration error: ${err.message}`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
}

/**
 * Binds a service's port before anything is opened, or exits with the one line naming its settings: the port's
 * when it is in use (`CATALOG_PORT=7101: the port is already in use`), the host's and the port's when the
 * address cannot be listened on (`CATALOG_HOST=192.0.2.1 CATALOG_PORT=7101: cannot listen: address not
 * available`).
 */
export async function bindServicePortOrExit(
  definition: ServiceDefinition,
  address: { host: string; port: number },
): Promise<Listener> {
  try {
    return await bindListener(address.host, address.port);
  } catch (err) {
    if (err instanceof ListenError) {
      const settings = serviceSettings(definition.name, definition.defaultPort);
      const port = `${settings.port.env}=${address.port}`;
      if (err instanceof PortInUseError) {
        console.error(`${port}: ${err.problem}`);
        process.exit(EXIT_PORT_IN_USE);
      }
      console.error(`${settings.host.env}=${address.host} ${port}: ${err.problem}`);
      process.exit(EXIT_CANNOT_LISTEN);
    }
    throw err;
  }
}

/** Calls `stop` once on SIGTERM or SIGINT, then exits (0 if it stopped cleanly). */
export function stopOnSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * The whole main of a single-service process: `main.ts` serves; `main.ts migrate` applies pending migrations
 * and exits (for a Kubernetes init container or a release step; serving also migrates at start).
 */
export async function runServiceMain(definition: ServiceDefinition, argv = process.argv.slice(2)): Promise<void> {
  const config = loadConfigOrExit({ ...serviceSettings(definition.name, definition.defaultPort), ...commonSettings });
  const logger = createLogger({ service: definition.name, level: config.logLevel });
  if (argv[0] === 'migrate') {
    const db = await openDatabase({
      service: definition.name,
      url: config.databaseUrl,
      dataDir: config.dataDir,
      entities: definition.entities,
      migrations: definition.migrations,
      logger,
    });
    const applied = await db.migrate();
    logger.info({ applied }, applied.length > 0 ? 'migrations applied' : 'database up to date');
    await db.close();
    return;
  }
  if (argv.length > 0) {
    console.error(`unknown command ${argv.join(' ')}; usage: main.ts [migrate]`);
    process.exit(EXIT_USAGE);
  }
  const listener = await bindServicePortOrExit(definition, config);
  const bus = await createBus(config, definition.name, logger);
  const running = await runService(definition, {
    host: config.host,
    port: config.port,
    listener,
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    bus,
    logger,
    clock: systemClock,
    shutdownGraceMs: config.shutdownGraceMs,
  });
  stopOnSignals(logger, async () => {
    await running.stop();
    await bus.close();
  });
  releaseStartupMemorySoon();
}
