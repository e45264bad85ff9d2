// MikroORM 7 writes the parameters of its own queries (entity reads, inserts, updates) into the SQL text on the
// client (`Platform.formatQuery`), escaping them first. Every service's SQL goes to the server with bound
// parameters instead, so the ORM's connection is made to send `$1, $2...` with the values beside the text:
// what a caller sent is never part of a statement's text.
import { isRaw, JsonProperty, raw, Utils } from '@mikro-orm/core';
import type { MikroORM } from '@mikro-orm/sql';
import { CompiledQuery, type Kysely, type Transaction } from 'kysely';

/** A statement as PostgreSQL receives it: text with `$n` placeholders, and their values. */
export interface BoundStatement {
  /** The SQL text. */
  text: string;
  /** The value of each placeholder, `$1` first. */
  values: unknown[];
}

/**
 * Turns a statement in MikroORM's placeholder syntax (`?` a value, `??` an identifier, `\?` a question mark)
 * into a bound one. A value is bound as PostgreSQL would read it from MikroORM's text: an object or a value
 * MikroORM tags as JSON as its JSON text, a bigint as its digits, a list as one placeholder per element (MikroORM
 * writes a list as its elements, for `in (?)`), a raw fragment as its own text and values. Only what carries no
 * caller text stays in the statement: identifiers MikroORM quotes, numbers, booleans and null.
 */
export function bindParameters(
  sql: string,
  params: readonly unknown[],
  quoteIdentifier: (identifier: string) => string,
  values: unknown[] = [],
): BoundStatement {
  const placeholder = (value: unknown): string => {
    if (value === null || value === undefined) return 'null';
    if (isRaw(value)) return bindParameters(value.sql, value.params, quoteIdentifier, values).text;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    if (Array.isArray(value) && !(value as { [JsonProperty]?: unknown })[JsonProperty]) {
      return value.map(placeholder).join(', ');
    }
    if (Utils.isPlainObject(value) || (value as { [JsonProperty]?: unknown })[JsonProperty]) {
      values.push(JSON.stringify(value));
    } else if (typeof value === 'bigint') values.push(value.toString());
    else values.push(value);
    return `$${values.length}`;
  };
  let text = '';
  let next = 0;
  for (let at = 0; at < sql.length; at++) {
    const char = sql[at];
    if (char === '\\' && sql[at + 1] === '?') {
      text += '?';
      at++;
    } else if (char === '?' && sql[at + 1] === '?') {
      text += quoteIdentifier(String(params[next++]));
      at++;
    } else if (char === '?') {
      text += placeholder(params[next++]);
    } else {
      text += char;
    }
  }
  return { text, values };
}

// PostgreSQL's protocol numbers a statement's parameters in 16 bits.
const MAX_BOUND_VALUES = 65_535;

// The members of MikroORM's SQL connection that its own `execute` uses. They are protected or private in its
// types, so they are named here; the ORM's version is pinned (7.2.1), and the kit's tests run every service
// through this path.
interface ConnectionInternals {
  platform: {
    quoteIdentifier(identifier: string): string;
    formatQuery(sql: string, params: readonly unknown[]): string;
  };
  config: {
    get(key: 'onQuery'): (sql: string, params: readonly unknown[]) => string;
    getLogger(): { isEnabled(namespace: string, context?: object): boolean };
  };
  ensureConnection(): Promise<void>;
  executeQuery<T>(sql: string, run: () => Promise<T>, context: object): Promise<T>;
  transformRawResult<T>(result: unknown, method: string): T;
  getClient(): Kysely<unknown>;
  execute(query: unknown, params?: unknown, method?: string, ctx?: Transaction<unknown>, context?: object): unknown;
}

/** What MikroORM's own preparation makes of a statement (a query builder, a raw fragment, named parameters). */
function prepare(connection: ConnectionInternals, query: unknown, params: unknown): { sql: string; params: unknown[] } {
  let statement = query;
  let values = params;
  // A native query builder (duck-typed: the ORM's packages may be separate copies) gives a raw fragment.
  if (typeof (statement as { toRaw?: unknown }).toRaw === 'function') {
    statement = (statement as { toRaw(): unknown }).toRaw();
  }
  if (typeof statement === 'string' && !Array.isArray(values)) {
    statement = raw(statement, values as Record<string, unknown>);
  }
  if (isRaw(statement)) {
    values = statement.params;
    statement = statement.sql;
  }
  const list = Array.isArray(values) ? values : [];
  return { sql: connection.config.get('onQuery')(String(statement), list), params: list };
}

/**
 * Makes the ORM send every statement, its own and `em.execute`'s, with server-bound parameters. What it gives up:
 * a statement of more than 65,535 values (a huge `$in`), which PostgreSQL cannot bind, goes as MikroORM formats it;
 * `em.stream` (unused here) keeps MikroORM's formatting. Values are sent untyped, so SQL written for the ORM that
 * puts a value where PostgreSQL cannot infer its type (`? is null`) needs a cast.
 */
export function bindOrmParameters(orm: MikroORM): void {
  const connection = orm.em.getConnection() as unknown as ConnectionInternals;
  const quoteIdentifier = (identifier: string) => connection.platform.quoteIdentifier(identifier);
  connection.execute = async (query, params = [], method = 'all', ctx, context = {}) => {
    await connection.ensureConnection();
    const prepared = prepare(connection, query, params);
    let bound = bindParameters(prepared.sql, prepared.params, quoteIdentifier);
    if (bound.values.length > MAX_BOUND_VALUES) {
      bound = { text: connection.platform.formatQuery(prepared.sql, prepared.params), values: [] };
    }
    // MikroORM 7 takes an abort signal from the logging context, and only then formats for its query log.
    const { signal, inflightQueryAbortStrategy, ...logContext } = context as {
      signal?: AbortSignal;
      inflightQueryAbortStrategy?: unknown;
    };
    const abort =
      signal == null && inflightQueryAbortStrategy == null ? undefined : { signal, inflightQueryAbortStrategy };
    const logger = connection.config.getLogger();
    const logged = logger.isEnabled('query-params', logContext)
      ? connection.platform.formatQuery(prepared.sql, prepared.params)
      : prepared.sql;
    return connection.executeQuery(
      logged,
      async () => {
        const compiled = CompiledQuery.raw(bound.text, bound.values);
        const client = (ctx ?? connection.getClient()) as unknown as {
          executeQuery(query: CompiledQuery, options?: object): Promise<unknown>;
        };
        return connection.transformRawResult(await client.executeQuery(compiled, abort), method);
      },
      { query: prepared.sql, params: prepared.params, ...logContext },
    );
  };
}
