// The life of one service process: serve health at once (not ready), open the database and migrate it (waiting
// for it with backoff when it cannot be reached), ensure the stream, start the outbox relay and the consumers,
// then serve the service's calls and report ready while the database answers; and on shutdown undo it in the
// safe order (stop accepting, finish in-flight calls, stop consumers, flush the outbox, close the database),
// within the grace period whatever the database does.

import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import type { DescService } from '@bufbuild/protobuf';
import type { ConnectRouter, Interceptor } from '@connectrpc/connect';
import type { EntitySchema } from '@mikro-orm/sql';
import type { Logger } from 'pino';
import { adminHandlers } from './admin.ts';
import type { EventBus, Subscription } from './bus.ts';
import type { Clock } from './clock.ts';
import { type ConsumerSpec, startConsumer } from './consumer.ts';
import { type Database, type DatabaseOptions, DROPPED_CLOSE_WAIT_MS, openDatabase, within } from './db.ts';
import { deadlineInterceptor } from './deadline.ts';
import { errorInterceptor, isDatabaseUnreachable } from './errors.ts';
import type { SqlMigration } from './migration.ts';
import { trackOutage } from './outage.ts';
import { createOutboxRelay, type OutboxRelay } from './outbox.ts';
import { startPeriodic } from './periodic.ts';
import { requestGuard } from './request-guard.ts';
import { bindListener, type Listener, startServerOn } from './server.ts';
import type { ServiceContext } from './service-context.ts';
import { traceInterceptor } from './trace.ts';

/** What a service declares so the runtime can run it. */
export interface ServiceDefinition {
  /** Service name, e.g. `catalog`: also its stream `billing.<name>.>` and error domain `billing.<name>`. */
  name: string;
  /** Port the service listens on unless configured otherwise (catalog 7101 ... invoicing 7105). */
  defaultPort: number;
  /** Entity schemas. */
  entities: readonly EntitySchema[];
  /** Migrations, oldest first. */
  migrations: readonly SqlMigration[];
  /** The protobuf services served (listed by reflection). */
  services: readonly DescService[];
  /** Registers the RPC handlers. */
  routes(router: ConnectRouter, context: ServiceContext): void;
  /** The service's consumers of other services' events (started, and replayable through AdminService). */
  consumers?(context: ServiceContext): ConsumerSpec[];
  /** Starts the service's background jobs; returns what to stop on shutdown. */
  start?(context: ServiceContext): Promise<Subscription[]>;
  /**
   * How long the outbox keeps published events, in ms (`pruneOutbox`); forever when unset. For services that
   * publish at a high rate, whose old events nobody replays.
   */
  outboxRetentionMs?: number;
}

/** Where and how a service runs. */
export interface RuntimeOptions {
  /** Host to listen on. */
  host: string;
  /** Port (0 for any free one). */
  port: number;
  /** The port, bound ahead at `host`:`port` (`pnpm start` binds every service's before any opens its database). */
  listener?: Listener;
  /** PostgreSQL URL; empty for PGlite. */
  databaseUrl?: string;
  /** PGlite folder when no URL (`memory://` for none). */
  dataDir?: string;
  /** The bus; the caller owns it (closes it after stopping every service using it). */
  bus: EventBus;
  /** Logger. */
  logger: Logger;
  /** Clock. */
  clock: Clock;
  /** Extra interceptors, run inside the error interceptor. */
  interceptors?: Interceptor[];
  /** How long shutdown takes at most, in ms: it waits for in-flight calls and the outbox within it. */
  shutdownGraceMs?: number;
  /** The longest one database wait takes (a connection, a statement, a lock), in ms. */
  databaseTimeoutMs?: number;
  /** How long a start waits for an unreachable database, in ms, before it fails with DatabaseUnreachableError. */
  databaseStartTimeoutMs?: number;
  /** Client connections held at once. */
  maxConnections?: number;
  /** How long a client connection with no call in flight stays open, in ms. */
  idleTimeoutMs?: number;
  /** The longest a client may take to send a whole request, in ms. */
  requestTimeoutMs?: number;
}

/** Where a service's database is and how long to wait for it: the part of RuntimeOptions a migration needs. */
export type DatabasePlace = Pick<
  RuntimeOptions,
  'databaseUrl' | 'dataDir' | 'logger' | 'databaseTimeoutMs' | 'databaseStartTimeoutMs'
> &
  Pick<DatabaseOptions, 'outage'>;

/** The database could not be reached for as long as a start waits for it. */
export class DatabaseUnreachableError extends Error {
  override name = 'DatabaseUnreachableError';
}

// Waits between attempts to reach the database at start: doubling from the first to the longest.
const FIRST_RETRY_MS = 250;
const LONGEST_RETRY_MS = 5_000;
// How often readiness asks the database whether it answers.
const READINESS_INTERVAL_MS = 2_000;

function formatDuration(ms: number): string {
  return ms % 1_000 === 0 ? `${ms / 1_000}s` : `${ms}ms`;
}

/**
 * Opens the service's database and applies its pending migrations. While the database cannot be reached (or
 * refuses the service's login), it tries again with backoff, for `databaseStartTimeoutMs` (60 s by default), each
 * attempt first asking it for an answer within what is left of that time, then fails with
 * DatabaseUnreachableError; any other failure (a migration that fails, or that runs past the database timeout) is
 * thrown at once.
 */
export async function openMigratedDatabase(definition: ServiceDefinition, place: DatabasePlace): Promise<Database> {
  const logger = place.logger;
  const options: DatabaseOptions = {
    service: definition.name,
    url: place.databaseUrl,
    dataDir: place.dataDir,
    entities: definition.entities,
    migrations: definition.migrations,
    logger,
    timeoutMs: place.databaseTimeoutMs,
    outage: place.outage,
  };
  const startedAt = Date.now();
  const waitMs = place.databaseStartTimeoutMs ?? 60_000;
  const giveUpAt = startedAt + waitMs;
  const answerMs = place.databaseTimeoutMs ?? 5_000;
  let retryMs = FIRST_RETRY_MS;
  for (let attempt = 1; ; attempt++) {
    const db = await openDatabase(options);
    let why = await db.probe(Math.max(1, Math.min(answerMs, giveUpAt - Date.now())));
    if (why === undefined) {
      try {
        const applied = await db.migrate();
        logger.info({ migrations: applied }, applied.length > 0 ? 'migrations applied' : 'database up to date');
        return db;
      } catch (err) {
        if (!isDatabaseUnreachable(err)) {
          await db.close();
          throw err;
        }
        why = err instanceof Error ? err.message : String(err);
      }
    }
    await db.close();
    if (Date.now() + retryMs > giveUpAt) {
      const waited = formatDuration(Math.round((Date.now() - startedAt) / 1_000) * 1_000);
      throw new DatabaseUnreachableError(`the database could not be reached for ${waited}: ${why}`);
    }
    if (attempt === 1) logger.warn({ reason: why, waitMs }, 'database unreachable; waiting for it');
    else logger.debug({ reason: why, attempt }, 'database still unreachable');
    await new Promise((resolve) => setTimeout(resolve, retryMs));
    retryMs = Math.min(retryMs * 2, LONGEST_RETRY_MS);
  }
}

/** A running service. */
export interface RunningService {
  /** The bound port. */
  port: number;
  /** Its context (database, bus, relay...), for tests and tools. */
  context: ServiceContext;
  /** Graceful shutdown; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts a service: health at once, then database and migrations, stream, relay, consumers, and its calls. It is
 * ready (grpc.health.v1 `readiness`) from then on while its database answers within `databaseTimeoutMs`.
 */
export async function runService(definition: ServiceDefinition, options: RuntimeOptions): Promise<RunningService> {
  const logger = options.logger;
  const databaseTimeoutMs = options.databaseTimeoutMs ?? 5_000;
  // The port is bound first: when it cannot be (ListenError), the start fails before anything was opened. Health
  // is served from then on, not ready, so a probe sees a start that waits for its database; other calls answer
  // UNAVAILABLE until the service's routes are installed.
  const listener = options.listener ?? (await bindListener(options.host, options.port));
  const outage = trackOutage('database', logger);
  const server = startServerOn(listener, {
    services: [...definition.services, AdminService],
    logger,
    interceptors: [
      errorInterceptor(`billing.${definition.name}`, logger, { outage }),
      deadlineInterceptor(logger),
      requestGuard(),
      traceInterceptor,
      ...(options.interceptors ?? []),
    ],
    maxConnections: options.maxConnections,
    idleTimeoutMs: options.idleTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs,
  });
  // A start that fails half-way closes what it opened, so the process (or test) can exit.
  const started: Subscription[] = [];
  let db: Database | undefined;
  let relay: OutboxRelay | undefined;
  const undoStart = async () => {
    await Promise.allSettled(started.map((s) => s.stop()));
    await relay?.stop();
    await db?.close();
    await server.shutdown({ graceMs: 0 });
  };
  let context: ServiceContext;
  try {
    const database = await openMigratedDatabase(definition, { ...options, databaseTimeoutMs, outage });
    db = database;
    await options.bus.ensureStream(definition.name);
    const outbox = createOutboxRelay({
      db: database,
      bus: options.bus,
      logger,
      replayOnStart: !options.bus.survivesRestart,
      retentionMs: definition.outboxRetentionMs,
    });
    relay = outbox;
    outbox.start();
    const ctx: ServiceContext = { db: database, bus: options.bus, relay: outbox, logger, clock: options.clock };
    context = ctx;
    const specs = definition.consumers?.(ctx) ?? [];
    for (const spec of specs) started.push(await startConsumer({ ...spec, db: database, bus: options.bus, logger }));
    started.push(...((await definition.start?.(ctx)) ?? []));
    server.route((router) => {
      definition.routes(router, ctx);
      router.service(AdminService, adminHandlers(ctx, specs));
    });
  } catch (err) {
    await undoStart();
    throw err;
  }
  const database = db;
  const outbox = relay;
  // Ready while the database answers in time: a database that is down or frozen takes the service out of its
  // load balancer's rotation (and back when it answers again), without restarting it (liveness stays serving).
  let ready = true;
  server.setReady(true);
  const readiness = startPeriodic({
    name: 'readiness',
    intervalMs: READINESS_INTERVAL_MS,
    logger,
    async run() {
      const answers = await database.ping(databaseTimeoutMs);
      if (answers !== ready)
        logger.warn({ ready: answers }, answers ? 'ready again' : 'not ready: the database does not answer');
      ready = answers;
      server.setReady(answers);
      return 0;
    },
  });
  const subscriptions = started;
  const grace = options.shutdownGraceMs ?? 10_000;
  let stopping: Promise<void> | undefined;
  return {
    port: server.port,
    context,
    stop() {
      stopping ??= (async () => {
        // One budget for the whole stop: the calls in flight, then the outbox, then the database, each get what
        // the steps before them left.
        const endBy = Date.now() + grace;
        const left = () => Math.max(0, endBy - Date.now());
        // Not awaited: a ping in progress waits for the database at most its timeout, and the server reports
        // not ready from the shutdown on whatever the ping finds.
        void readiness.stop();
        await server.shutdown({ graceMs: left() });
        // Each step that waits on the database (a consumer's or the relay's pass, the outbox's flush) is given up
        // when the budget is spent: the database may be frozen, and the rest is relayed at the next start.
        await within(Promise.all(subscriptions.map((s) => s.stop())), left(), undefined);
        const pending = await within(outbox.flush(left()), left(), undefined);
        if (pending !== 0) {
          logger.warn({ pending }, 'outbox not empty at shutdown; it will be relayed at next start');
        }
        await within(outbox.stop(), left(), undefined);
        // Closing drops what is still open once its budget is spent, then waits a moment for the sockets to end.
        await database.close(Math.max(0, left() - DROPPED_CLOSE_WAIT_MS));
      })();
      return stopping;
    },
  };
}
