// What every service's main.ts does: read its settings, bind its port, build its logger and bus, run it, and
// stop it gracefully on SIGTERM or SIGINT, within SHUTDOWN_GRACE whatever its dependencies do. A bad setting, a
// port in use, an address it cannot listen on, or a database unreachable for DATABASE_START_TIMEOUT stops the
// process with one line naming the settings, each with its own exit code; an unexpected error ends it logged at
// fatal, its logs flushed.
import type { Logger } from 'pino';
import type { EventBus } from './bus.ts';
import { systemClock } from './clock.ts';
import { ConfigError, type ConfigOf, loadConfig, parsers, setting } from './config.ts';
import { within } from './db.ts';
import { createLogger } from './log.ts';
import { releaseMemoryWhenIdle, releaseStartupMemorySoon } from './memory.ts';
import { createMemoryBus } from './memory-bus.ts';
import { connectNatsBus } from './nats-bus.ts';
import { redactUrls } from './redact.ts';
import {
  DatabaseUnreachableError,
  openMigratedDatabase,
  type RunningService,
  type RuntimeOptions,
  runService,
  type ServiceDefinition,
} from './runtime.ts';
import { bindListener, ListenError, type Listener, PortInUseError } from './server.ts';

// Exit codes of a process that cannot start (from sysexits.h), so scripts and supervisors can tell them apart.
const EXIT_USAGE = 64;
const EXIT_PORT_IN_USE = 69;
// EX_OSERR: the system refused to listen on the address (not this machine's, or not allowed).
const EXIT_CANNOT_LISTEN = 71;
// EX_SOFTWARE: an error the process did not expect (a bug), logged at fatal.
const EXIT_FATAL = 70;
// EX_TEMPFAIL: the database could not be reached for DATABASE_START_TIMEOUT; a later start may succeed.
const EXIT_DATABASE_UNREACHABLE = 75;
export const EXIT_CONFIG = 78;
// What a signalled stop may take beyond SHUTDOWN_GRACE before the process exits regardless.
const SHUTDOWN_MARGIN_MS = 1_000;

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
  databaseTimeoutMs: setting({
    env: 'DATABASE_TIMEOUT',
    description:
      'the longest one database wait takes (a connection, a statement, a lock) before the call is UNAVAILABLE',
    default: 5_000,
    shownDefault: '5s',
    parse: parsers.positiveDuration,
  }),
  databaseStartTimeoutMs: setting({
    env: 'DATABASE_START_TIMEOUT',
    description: 'how long a start waits for an unreachable database, not ready meanwhile, before it exits',
    default: 60_000,
    shownDefault: '60s',
    parse: parsers.positiveDuration,
  }),
  maxConnections: setting({
    env: 'MAX_CONNECTIONS',
    description: 'client connections the process holds at once; more are closed as they arrive',
    default: 2_048,
    parse: parsers.positiveInteger,
  }),
  idleTimeoutMs: setting({
    env: 'IDLE_TIMEOUT',
    description: 'how long a client connection with no call in flight stays open',
    default: 300_000,
    shownDefault: '5m',
    parse: parsers.positiveDuration,
  }),
  requestTimeoutMs: setting({
    env: 'REQUEST_TIMEOUT',
    description: 'the longest a client may take to send a whole request, headers and body',
    default: 30_000,
    shownDefault: '30s',
    parse: parsers.positiveDuration,
  }),
};

/** What the common settings ask of a service's runtime: its bounds on the database, on clients and on shutdown. */
export function runtimeBounds(config: ConfigOf<typeof commonSettings>) {
  return {
    shutdownGraceMs: config.shutdownGraceMs,
    databaseTimeoutMs: config.databaseTimeoutMs,
    databaseStartTimeoutMs: config.databaseStartTimeoutMs,
    maxConnections: config.maxConnections,
    idleTimeoutMs: config.idleTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
  };
}

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

/**
 * Calls `stop` once on SIGTERM or SIGINT, then exits (0 if it stopped cleanly). A stop that has not finished
 * SHUTDOWN_GRACE (and a second) after the signal ends the process anyway, with exit code 1: nothing a
 * dependency holds (a frozen database, a dead connection) keeps the port past the grace period.
 */
export function stopOnSignals(logger: Logger, graceMs: number, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error({ graceMs }, 'shutdown did not finish within its grace period; exiting');
      exitFlushed(logger, 1);
    }, graceMs + SHUTDOWN_MARGIN_MS).unref();
    stop().then(
      () => exitFlushed(logger, 0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        exitFlushed(logger, 1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Exits with `code` once the logger's buffered lines are written (or after a second, if they cannot be). */
function exitFlushed(logger: Logger, code: number): void {
  setTimeout(() => process.exit(code), 1_000).unref();
  logger.flush(() => process.exit(code));
}

/**
 * Ends the process on an error that nothing handled: logged at fatal with its stack, the logs flushed, exit code
 * 70. Every dependency fault is handled where it arises (the database pool, the bus), so what reaches this is a
 * defect of the process itself.
 */
export function exitOnUnexpectedErrors(logger: Logger): void {
  const fatal = (err: unknown, origin: string) => {
    logger.fatal({ err, origin }, 'unexpected error; exiting');
    exitFlushed(logger, EXIT_FATAL);
  };
  process.on('uncaughtException', (err) => fatal(err, 'uncaught exception'));
  process.on('unhandledRejection', (reason) => fatal(reason, 'unhandled rejection'));
}

/**
 * Starts a service, or exits with one line when its database stayed unreachable for DATABASE_START_TIMEOUT
 * (`USAGE_DATABASE_URL: the database could not be reached for 60s: connect ECONNREFUSED 10.0.0.5:5432`).
 */
export async function runServiceOrExit(
  definition: ServiceDefinition,
  options: RuntimeOptions,
): Promise<RunningService> {
  try {
    return await runService(definition, options);
  } catch (err) {
    return exitIfDatabaseUnreachable(definition, err);
  }
}

function exitIfDatabaseUnreachable(definition: ServiceDefinition, err: unknown): never {
  if (err instanceof DatabaseUnreachableError) {
    console.error(
      `${serviceSettings(definition.name, definition.defaultPort).databaseUrl.env}: ${redactUrls(err.message)}`,
    );
    process.exit(EXIT_DATABASE_UNREACHABLE);
  }
  throw err;
}

/**
 * The whole main of a single-service process: `main.ts` serves; `main.ts migrate` applies pending migrations
 * and exits (for a Kubernetes init container or a release step; serving also migrates at start).
 */
export async function runServiceMain(definition: ServiceDefinition, argv = process.argv.slice(2)): Promise<void> {
  const config = loadConfigOrExit({ ...serviceSettings(definition.name, definition.defaultPort), ...commonSettings });
  const logger = createLogger({ service: definition.name, level: config.logLevel });
  exitOnUnexpectedErrors(logger);
  const bounds = runtimeBounds(config);
  if (argv[0] === 'migrate') {
    const place = { databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger, ...bounds };
    const db = await openMigratedDatabase(definition, place).catch((err: unknown) =>
      exitIfDatabaseUnreachable(definition, err),
    );
    await db.close();
    return;
  }
  if (argv.length > 0) {
    console.error(`unknown command ${argv.join(' ')}; usage: main.ts [migrate]`);
    process.exit(EXIT_USAGE);
  }
  const listener = await bindServicePortOrExit(definition, config);
  const bus = await createBus(config, definition.name, logger);
  const running = await runServiceOrExit(definition, {
    host: config.host,
    port: config.port,
    listener,
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    bus,
    logger,
    clock: systemClock,
    ...bounds,
  });
  stopOnSignals(logger, config.shutdownGraceMs, async () => {
    await running.stop();
    // A NATS that is down holds a polite close: it gets what the margin after the grace period allows.
    await within(bus.close(), SHUTDOWN_MARGIN_MS / 2, undefined);
  });
  releaseStartupMemorySoon();
  releaseMemoryWhenIdle();
}
