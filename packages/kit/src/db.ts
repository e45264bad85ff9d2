// Persistence: one database per service through MikroORM 7. PostgreSQL when a URL is configured; PGlite
// (PostgreSQL compiled to WASM, in process, data in a local folder) when not, for the all-in-one mode, where the
// services of a process that keep their data in one folder share its cluster, each in its own schema
// (embedded.ts). Each driver is loaded only when it is used: a service on PostgreSQL never loads PGlite.
//
// On PostgreSQL every database wait is bounded (`timeoutMs`, DATABASE_TIMEOUT): acquiring a pool connection,
// each statement and each lock, on the server; and on the client, a statement a server does not answer at all (a
// frozen one: the connection stays open and nothing comes back) drops its connection. A connection that dies
// (a crash, a restart, a dropped one) leaves the pool at once, whoever holds it, so the pool never keeps dead
// slots, and closing finishes within its bound whatever the pool holds. A call's deadline (deadline.ts) cancels
// its statement in flight on the server, and refuses those that come after. Every statement's outcome feeds the
// database's outage state, which the error interceptor logs once per outage (outage.ts).

import type { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { connect as openSocket } from 'node:net';
import { Migration, Migrator } from '@mikro-orm/migrations';
import type { EntitySchema, MikroORM, SqlEntityManager } from '@mikro-orm/sql';
import { CompiledQuery } from 'kysely';
import type { Logger } from 'pino';
import { bindOrmParameters } from './bound-parameters.ts';
import { callDeadline, withoutCallDeadline } from './deadline.ts';
import { isDatabaseUnavailable, isDatabaseUnreachable, UnavailableError } from './errors.ts';
import { KIT_MIGRATIONS } from './kit-schema.ts';
import type { SqlMigration } from './migration.ts';
import { type Outage, trackOutage } from './outage.ts';

export { isDatabaseUnavailable } from './errors.ts';

/** The entity manager every service uses (PostgreSQL or PGlite). */
export type Em = SqlEntityManager;

/** Where a service's data lives. */
export interface DatabaseOptions {
  /** Service name, used in logs. */
  service: string;
  /** PostgreSQL URL (postgres://...); when empty, PGlite is used. */
  url?: string;
  /**
   * PGlite folder when `url` is empty; `memory://` keeps data in memory only. The service's tables are in the
   * schema named after it, and the services of this process with the same folder share its cluster.
   */
  dataDir?: string;
  /** MikroORM entity schemas of the service. */
  entities: readonly EntitySchema[];
  /** The service's migrations, oldest first; the kit's own tables are created before them. */
  migrations: readonly SqlMigration[];
  /** Pool size for PostgreSQL. */
  poolSize?: number;
  /**
   * The bound on every database wait on PostgreSQL, in ms (DATABASE_TIMEOUT; default 5 s): acquiring a pool
   * connection, one statement (`statement_timeout`), one lock (`lock_timeout`). Past it the statement fails and
   * the call answers UNAVAILABLE. A statement the server does not answer at all drops its connection a second
   * later. Migrations are bounded too: one that takes longer needs a larger bound for `main.ts migrate`.
   */
  timeoutMs?: number;
  /** Logger. */
  logger: Logger;
  /**
   * Where the database's outages are tracked (the error interceptor logs them): given by a runtime whose server
   * starts before the database opens; a new one when not.
   */
  outage?: Outage;
}

/** An open database with the helpers services use. */
export interface Database {
  /** The ORM, for the rare caller that needs it (migrations, schema tools). */
  readonly orm: MikroORM;
  /** A fresh entity manager for work outside a transaction (reads). */
  fork(): Em;
  /**
   * Runs `work` in one transaction on a fresh entity manager; commits if it returns, rolls back if it throws.
   * `repeatable read` gives every statement of the transaction the same snapshot.
   */
  transaction<T>(work: (em: Em) => Promise<T>, isolation?: 'read committed' | 'repeatable read'): Promise<T>;
  /** Applies pending migrations; returns the names applied. */
  migrate(): Promise<string[]>;
  /** True when running on PGlite (one session: no real concurrency). */
  readonly embedded: boolean;
  /** Whether `select 1` answers within `timeoutMs` (readiness), on a connection of its own; never throws. */
  ping(timeoutMs: number): Promise<boolean>;
  /** Why `select 1` does not answer within `timeoutMs` on a connection of its own, or undefined; never throws. */
  probe(timeoutMs: number): Promise<string | undefined>;
  /** The database's outage state, which the error interceptor reports (`errorInterceptor`'s `outage`). */
  readonly outage: Outage;
  /**
   * Closes the pool. Connections still open after `timeoutMs` (default: the database timeout), held by work that
   * never ends or to a server that does not answer, are dropped, so it returns soon after whatever the pool holds.
   */
  close(timeoutMs?: number): Promise<void>;
}

function toMikroMigration(migration: SqlMigration) {
  return {
    name: migration.name,
    class: class extends Migration {
      override up(): void {
        for (const statement of migration.statements) this.addSql(statement);
      }
    },
  };
}

/** The ORM settings of a service whatever its database. */
function ormOptions(options: DatabaseOptions) {
  const migrations = [...KIT_MIGRATIONS, ...options.migrations].map(toMikroMigration);
  return {
    entities: [...options.entities],
    extensions: [Migrator],
    migrations: { migrationsList: migrations, transactional: true, allOrNothing: true, snapshot: false, silent: true },
    logger: (message: string) => options.logger.debug({ orm: message }),
    allowGlobalContext: false,
    // MikroORM finds the transaction an entity manager joins by context name, in async-local storage: with one name
    // for all, a service's statement issued while another service's transaction runs (in one process) would join
    // that transaction.
    contextName: options.service,
    discovery: { warnWhenNoEntities: false },
  };
}

/** The ORM of a service on PGlite, in its schema of its folder's cluster, and how to leave the cluster. */
async function openEmbeddedOrm(options: DatabaseOptions): Promise<{ orm: MikroORM; leave: () => Promise<void> }> {
  const dataDir = options.dataDir ?? 'memory://';
  if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true });
  const [{ openEmbeddedSchema }, { MikroORM: PgliteOrm }] = await Promise.all([
    import('./embedded.ts'),
    import('@mikro-orm/pglite'),
  ]);
  const place = await openEmbeddedSchema(options.service, dataDir);
  try {
    // `schema` qualifies the entities' tables and MikroORM's record of applied migrations; SQL written by hand
    // finds the service's tables through the search path the cluster sets for each statement.
    const orm = await PgliteOrm.init({
      ...ormOptions(options),
      dbName: dataDir,
      schema: options.service,
      driverOptions: { pglite: place.pglite },
    });
    return { orm, leave: place.release };
  } catch (err) {
    await place.release();
    throw err;
  }
}

const DEFAULT_TIMEOUT_MS = 5_000;
// How much longer than the database timeout a statement may go unanswered before its connection is dropped: the
// server's own statement_timeout answers a slow statement first, so only a server that answers nothing loses
// its connection.
const NO_ANSWER_MARGIN_MS = 1_000;
// How long closing waits for dropped connections to end.
export const DROPPED_CLOSE_WAIT_MS = 1_000;
// PostgreSQL's cancel request code (1234 in the high 16 bits, 5678 in the low).
const CANCEL_REQUEST_CODE = 80_877_102;

// The members of pg's Client (8.23, MikroORM's driver) that the kit's connections use: queries, the socket
// (pg-pool too destroys it on a connection timeout), and the backend's key and address, for a cancel request.
// Declared here: the kit reaches pg only through the pool MikroORM creates, and does not depend on pg itself.
interface PgClient extends EventEmitter {
  query(...args: unknown[]): unknown;
  readonly connection: { readonly stream: { destroy(): void } };
  readonly processID: number | null;
  readonly secretKey: number | null;
  readonly host: string;
  readonly port: number;
}

/** pg's Client class, or the kit's subclass of it. */
type PgClientClass = new (config?: unknown) => PgClient;

// What the kit uses of pg-pool's Pool: the Client class it creates connections with (replaced before it
// creates any), its errors, and its connect.
interface PgPool extends EventEmitter {
  Client: PgClientClass;
  connect(...args: unknown[]): Promise<unknown>;
}

/** A connection's release, as pg-pool sets it on a connection it hands out; an error (or true) destroys it. */
type PoolRelease = (err?: Error | boolean) => void;

/** The pool's connections, as the kit makes them. */
interface PoolConnections {
  /** The connection class, bounding every statement (`boundedConnections`). */
  Client: PgClientClass;
  /** Drops every connection still open (closing past its bound). */
  dropAll(reason: Error): void;
  /** Resolves once no connection is open. */
  closed(): Promise<void>;
}

/** An error for a statement the server did not answer within `ms`. */
function noAnswer(ms: number): Error {
  return Object.assign(new Error(`the database did not answer within ${ms} ms`), { code: 'ETIMEDOUT' });
}

/**
 * Asks the server to cancel the statement `client` runs, with PostgreSQL's cancel request (its own short
 * connection, as libpq's PQcancel sends it); fire and forget, given up after `timeoutMs`.
 */
function sendCancelRequest(client: PgClient, timeoutMs: number): void {
  const { processID, secretKey, host, port } = client;
  if (processID === null || secretKey === null) return;
  const request = Buffer.alloc(16);
  request.writeInt32BE(16, 0);
  request.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  request.writeInt32BE(processID, 8);
  request.writeInt32BE(secretKey, 12);
  const socket = host.startsWith('/') ? openSocket(`${host}/.s.PGSQL.${port}`) : openSocket(port, host);
  socket.setTimeout(timeoutMs, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  socket.on('connect', () => socket.end(request));
}

/**
 * pg's Client class `Base`, made to bound its statements: each one the kit sends (as a promise: Kysely's and the
 * pool's) fails, and drops its connection, when the server does not answer within `noAnswerMs`, or when the
 * deadline of the call that sent it passes (after a cancel request, so the server stops it too; the session then
 * ends, which rolls its transaction back); one sent past the call's deadline is refused and drops the connection.
 * A dropped connection, or one that dies, is released to the pool with an error (the pool then discards it), even
 * if its holder never releases it: Kysely does not when a transaction's begin, commit or rollback fails.
 */
function boundedConnections(Base: PgClientClass, noAnswerMs: number, outage: Outage, logger: Logger): PoolConnections {
  const open = new Set<PgClient>();
  let whenClosed: (() => void) | undefined;

  class BoundedClient extends Base {
    #poolRelease: PoolRelease | undefined;
    // Why the kit dropped the connection (a statement unanswered, a deadline): what its statements fail with.
    #dropped: unknown;

    constructor(config?: unknown) {
      super(config);
      open.add(this);
      // A connection's failure is its statements' to report; no 'error' event of a connection goes unheard.
      this.on('error', (err: Error) => logger.debug({ error: err.message }, 'database connection failed'));
      this.once('end', () => {
        open.delete(this);
        if (open.size === 0) whenClosed?.();
        this.release(true);
      });
    }

    set release(release: PoolRelease) {
      this.#poolRelease = release;
    }

    /** Returns the connection to the pool, once; a dropped one goes back with an error, so the pool discards it. */
    get release(): PoolRelease {
      return (err) => {
        const release = this.#poolRelease;
        if (!release) return;
        this.#poolRelease = undefined;
        release(err || this.#dropped !== undefined);
      };
    }

    /** Drops the connection: its socket is destroyed and its statements fail with `reason`. */
    drop(reason: unknown): void {
      if (this.#dropped !== undefined) return;
      this.#dropped = reason;
      this.connection.stream.destroy();
    }

    override query(...args: unknown[]): unknown {
      // A cursor or a callback goes unbounded: the kit sends neither.
      const submittable = typeof (args[0] as { submit?: unknown } | undefined)?.submit === 'function';
      if (submittable || args.some((arg) => typeof arg === 'function')) return super.query(...args);
      const deadline = callDeadline();
      const refusal = this.#dropped ?? (deadline?.aborted ? deadline.reason : undefined);
      if (refusal !== undefined) {
        this.drop(refusal);
        return Promise.reject(refusal);
      }
      const since = performance.now();
      const answer = super.query(...args) as Promise<unknown>;
      return new Promise((resolve, reject) => {
        let settled = false;
        const settle = (outcome: () => void) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          deadline?.removeEventListener('abort', onDeadline);
          outcome();
        };
        const timer = setTimeout(() => {
          const err = noAnswer(noAnswerMs);
          this.drop(err);
          outage.unreachable(err, since);
          settle(() => reject(err));
        }, noAnswerMs);
        const onDeadline = () => {
          const reason: unknown = deadline?.reason;
          sendCancelRequest(this, noAnswerMs);
          this.drop(reason);
          settle(() => reject(reason));
        };
        deadline?.addEventListener('abort', onDeadline, { once: true });
        answer.then(
          (result) =>
            settle(() => {
              outage.reachable(since);
              resolve(result);
            }),
          (err: unknown) =>
            settle(() => {
              const reason = this.#dropped ?? err;
              if (isDatabaseUnreachable(reason)) outage.unreachable(reason, since);
              reject(reason);
            }),
        );
      });
    }
  }

  return {
    Client: BoundedClient,
    dropAll(reason) {
      for (const client of open) (client as BoundedClient).drop(reason);
    },
    closed: () =>
      open.size === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            whenClosed = resolve;
          }),
  };
}

/**
 * Makes `pool` create the kit's bounded connections, hears its errors (an idle connection's failure is re-emitted
 * on the pool, and an 'error' event nobody hears ends the process), and reports a connection it cannot acquire
 * (refused, or none within the timeout) to the outage state.
 */
function guardPool(pool: PgPool, connections: PoolConnections, outage: Outage, logger: Logger): void {
  pool.Client = connections.Client;
  pool.on('error', (err: Error) => logger.debug({ error: err.message }, 'idle database connection failed'));
  const acquire = pool.connect.bind(pool);
  pool.connect = (...args: unknown[]) => {
    // The callback form (pool.query, for a caller of the native pool) is left as is: Kysely uses the promise.
    if (args.length > 0) return acquire(...args);
    const since = performance.now();
    return acquire().catch((err: unknown) => {
      if (isDatabaseUnreachable(err)) outage.unreachable(err, since);
      throw err;
    });
  };
}

/**
 * The ORM of a service on PostgreSQL, with its pool, and the pool's connections once MikroORM has created it (on
 * its first connection).
 */
async function openPostgresOrm(
  options: DatabaseOptions,
  url: string,
  timeoutMs: number,
  outage: Outage,
): Promise<{ orm: MikroORM; connections: () => PoolConnections | undefined }> {
  const { MikroORM: PostgresOrm } = await import('@mikro-orm/postgresql');
  let connections: PoolConnections | undefined;
  const orm = await PostgresOrm.init({
    ...ormOptions(options),
    clientUrl: url,
    pool: { min: 0, max: options.poolSize ?? 10 },
    driverOptions: {
      connectionTimeoutMillis: timeoutMs,
      onPoolCreated(pool: PgPool) {
        connections = boundedConnections(pool.Client, timeoutMs + NO_ANSWER_MARGIN_MS, outage, options.logger);
        guardPool(pool, connections, outage, options.logger);
      },
      // Each new connection gets its session settings before it is handed out; a connection that cannot take
      // them is closed and its acquisition fails. They are set rather than sent as startup options, which a URL's
      // own options replace and PgBouncer refuses (behind PgBouncer in transaction mode, set them on the role:
      // docs/development.md). No JIT: services run short statements, and a set-wise statement whose row
      // estimates are high (functions over JSON are guessed at 100 rows each) would spend a second compiling what
      // runs in milliseconds.
      onConnect: (client: PgClient) =>
        client.query(`set jit = off; set statement_timeout = ${timeoutMs}; set lock_timeout = ${timeoutMs}`),
    },
  });
  return { orm, connections: () => connections };
}

/** What `promise` resolves to, or `fallback` when it has not settled within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** What an error says, for a line that reports why the database is not reachable. */
function describe(err: unknown): string {
  return err instanceof Error || (typeof err === 'object' && err !== null && 'message' in err)
    ? String((err as { message: unknown }).message)
    : String(err);
}

/**
 * Why a new connection to `url` cannot run `select 1` within `timeoutMs` (refused, a login refused, no answer), or
 * undefined when it can. The connection is closed either way.
 */
async function probeConnection(url: string, timeoutMs: number): Promise<string | undefined> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined);
  const answered = withoutCallDeadline(() => client.connect().then(() => client.query('select 1')));
  try {
    return await within(
      answered.then(
        () => undefined,
        (err: unknown) => describe(err),
      ),
      timeoutMs,
      `no answer within ${timeoutMs} ms`,
    );
  } finally {
    // A server that does not answer would hold a polite end: the socket is destroyed.
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    void client.end().catch(() => undefined);
  }
}

/** Opens (and does not yet migrate) the service's database. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new Error(`the database timeout must be a positive number of ms (got ${timeoutMs})`);
  }
  const outage = options.outage ?? trackOutage('database', options.logger);
  const { orm, leave, connections } = options.url
    ? { ...(await openPostgresOrm(options, options.url, timeoutMs, outage)), leave: async () => {} }
    : { ...(await openEmbeddedOrm(options)), connections: () => undefined };
  bindOrmParameters(orm);
  const root = orm.em as Em;
  // On a connection of its own, never one of the pool: a pool busy with the service's calls is no sign of a
  // database that does not answer, and a probe must not wait behind them.
  const probe = async (probeTimeoutMs: number): Promise<string | undefined> => {
    if (options.url) return probeConnection(options.url, probeTimeoutMs);
    const answered = withoutCallDeadline(() => root.getKysely().executeQuery(CompiledQuery.raw('select 1')));
    return within(
      answered.then(
        () => undefined,
        (err: unknown) => describe(err),
      ),
      probeTimeoutMs,
      `no answer within ${probeTimeoutMs} ms`,
    );
  };
  return {
    orm,
    embedded: !options.url,
    outage,
    fork: () => root.fork(),
    async transaction(work, isolation) {
      try {
        return await root.fork().transactional((em) => work(em), isolation ? { isolationLevel: isolation } : {});
      } catch (err) {
        if (isDatabaseUnavailable(err)) throw new UnavailableError('the database is unavailable', { cause: err });
        throw err;
      }
    },
    async migrate() {
      const applied = await orm.migrator.up();
      return applied.map((m) => m.name);
    },
    ping: async (pingTimeoutMs) => (await probe(pingTimeoutMs)) === undefined,
    probe,
    async close(closeTimeoutMs = timeoutMs) {
      const closing = orm.close(true).catch((err: unknown) => {
        options.logger.warn({ err }, 'closing the database failed');
      });
      const ended = closing.then(() => connections()?.closed()).then(() => true);
      const pool = connections();
      if (!(await within(ended, closeTimeoutMs, false)) && pool) {
        pool.dropAll(new Error('the database was closed'));
        if (!(await within(ended, DROPPED_CLOSE_WAIT_MS, false))) {
          options.logger.warn('database connections still open after closing');
        }
      }
      await leave();
    },
  };
}

/**
 * Runs SQL written in PostgreSQL's own placeholders (`$1`, `$2`...) with its parameters bound, in `em`'s
 * transaction: the one way services send SQL of their own (a batch as one JSON document, set-wise statements).
 */
export async function queryBound<Row>(em: Em, text: string, params: readonly unknown[]): Promise<Row[]> {
  const result = await em.getKysely().executeQuery<Row>(CompiledQuery.raw(text, [...params]));
  return [...result.rows];
}
