// The life of one service process: open the database and migrate it, connect the bus, start the outbox
// relay, the consumers and the server; and on shutdown undo it in the safe order (stop accepting, finish
// in-flight calls, stop consumers, flush the outbox, close the bus and the database).

import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import type { DescService } from '@bufbuild/protobuf';
import type { ConnectRouter, Interceptor } from '@connectrpc/connect';
import type { EntitySchema } from '@mikro-orm/sql';
import type { Logger } from 'pino';
import { adminHandlers } from './admin.ts';
import type { EventBus, Subscription } from './bus.ts';
import type { Clock } from './clock.ts';
import { type ConsumerSpec, startConsumer } from './consumer.ts';
import { openDatabase } from './db.ts';
import { errorInterceptor } from './errors.ts';
import type { SqlMigration } from './migration.ts';
import { createOutboxRelay, type OutboxRelay } from './outbox.ts';
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
  /** How long shutdown waits for in-flight calls and the outbox, in ms. */
  shutdownGraceMs?: number;
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

/** Starts a service: database, migrations, stream, relay, consumers, server. */
export async function runService(definition: ServiceDefinition, options: RuntimeOptions): Promise<RunningService> {
  const logger = options.logger;
  // The port is bound first: when it cannot be (ListenError), the start fails before anything was opened.
  const listener = options.listener ?? (await bindListener(options.host, options.port));
  const db = await openDatabase({
    service: definition.name,
    url: options.databaseUrl,
    dataDir: options.dataDir,
    entities: definition.entities,
    migrations: definition.migrations,
    logger,
  }).catch(async (err: unknown) => {
    await listener.close();
    throw err;
  });
  // A start that fails half-way closes what it opened, so the process (or test) can exit.
  const started: Subscription[] = [];
  let relay: OutboxRelay | undefined;
  const undoStart = async () => {
    await Promise.allSettled(started.map((s) => s.stop()));
    await relay?.stop();
    await db.close();
    await listener.close();
  };
  let context: ServiceContext;
  let server: ReturnType<typeof startServerOn>;
  try {
    const applied = await db.migrate();
    if (applied.length > 0) logger.info({ migrations: applied }, 'migrations applied');
    await options.bus.ensureStream(definition.name);
    const outbox = createOutboxRelay({
      db,
      bus: options.bus,
      logger,
      replayOnStart: !options.bus.survivesRestart,
      retentionMs: definition.outboxRetentionMs,
    });
    relay = outbox;
    outbox.start();
    const ctx: ServiceContext = { db, bus: options.bus, relay: outbox, logger, clock: options.clock };
    context = ctx;
    const specs = definition.consumers?.(ctx) ?? [];
    for (const spec of specs) started.push(await startConsumer({ ...spec, db, bus: options.bus, logger }));
    started.push(...((await definition.start?.(ctx)) ?? []));
    server = startServerOn(listener, {
      services: [...definition.services, AdminService],
      logger,
      interceptors: [
        errorInterceptor(`billing.${definition.name}`, logger),
        requestGuard(),
        traceInterceptor,
        ...(options.interceptors ?? []),
      ],
      routes(router) {
        definition.routes(router, ctx);
        router.service(AdminService, adminHandlers(ctx, specs));
      },
    });
  } catch (err) {
    await undoStart();
    throw err;
  }
  const outbox = relay;
  const subscriptions = started;
  const grace = options.shutdownGraceMs ?? 10_000;
  let stopping: Promise<void> | undefined;
  return {
    port: server.port,
    context,
    stop() {
      stopping ??= (async () => {
        await server.shutdown({ graceMs: grace });
        await Promise.all(subscriptions.map((s) => s.stop()));
        const left = await outbox.flush(grace);
        if (left > 0) logger.warn({ pending: left }, 'outbox not empty at shutdown; it will be relayed at next start');
        await outbox.stop();
        await db.close();
      })();
      return stopping;
    },
  };
}
