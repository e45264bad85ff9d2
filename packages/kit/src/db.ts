// Persistence: one database per service through MikroORM 7. PostgreSQL when a URL is configured; PGlite
// (PostgreSQL compiled to WASM, in process, data in a local folder) when not, for the all-in-one mode, where the
// services of a process that keep their data in one folder share its cluster, each in its own schema
// (embedded.ts). Each driver is loaded only when it is used: a service on PostgreSQL never loads PGlite.

import { mkdirSync } from 'node:fs';
import { Migration, Migrator } from '@mikro-orm/migrations';
import type { EntitySchema, MikroORM, SqlEntityManager } from '@mikro-orm/sql';
import { CompiledQuery, type DatabaseConnection } from 'kysely';
import type { Logger } from 'pino';
import { bindOrmParameters } from './bound-parameters.ts';
import { UnavailableError } from './errors.ts';
import { KIT_MIGRATIONS } from './kit-schema.ts';
import type { SqlMigration } from './migration.ts';

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
  /** Logger. */
  logger: Logger;
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
  /** Closes the pool. */
  close(): Promise<void>;
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

// Errors that mean the database is unreachable, not that the request is wrong: callers get UNAVAILABLE.
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03']);

/** True when an error says the database cannot be reached (connection refused, server shutting down). */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
  return /Connection terminated|connect ECONNREFUSED|timeout exceeded when trying to connect/i.test(err.message);
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

/** The ORM of a service on PostgreSQL, with its pool. */
async function openPostgresOrm(options: DatabaseOptions, url: string): Promise<MikroORM> {
  const { MikroORM: PostgresOrm } = await import('@mikro-orm/postgresql');
  return PostgresOrm.init({
    ...ormOptions(options),
    clientUrl: url,
    pool: { min: 0, max: options.poolSize ?? 10 },
    driverOptions: { connectionTimeoutMillis: 5_000 },
    // No JIT: services run short statements, and a set-wise statement whose row estimates are high (functions
    // over JSON are guessed at 100 rows each) would spend a second compiling what runs in milliseconds. Set on
    // each new connection rather than as a startup option, which a URL's own options replace and PgBouncer
    // refuses (behind PgBouncer in transaction mode, set it on the role: docs/development.md). A failure is
    // not thrown: the pool would never get the connection back; a broken one fails its first query instead.
    onCreateConnection: async (connection: unknown) => {
      try {
        await (connection as DatabaseConnection).executeQuery(CompiledQuery.raw('set jit = off'));
      } catch (err) {
        options.logger.warn({ err }, 'could not turn JIT off on a new connection');
      }
    },
  });
}

/** Opens (and does not yet migrate) the service's database. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const { orm, leave } = options.url
    ? { orm: await openPostgresOrm(options, options.url), leave: async () => {} }
    : await openEmbeddedOrm(options);
  bindOrmParameters(orm);
  const root = orm.em as Em;
  return {
    orm,
    embedded: !options.url,
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
    async close() {
      await orm.close(true);
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
