// MikroORM 7 writes the parameters of its own queries (entity reads, inserts, updates) into the SQL text on the
// client (`Platform.formatQuery`), escaping them first. Every service's SQL goes to the server with bound
// parameters instead, so the ORM's connection is made to send `$1, $2...` with the values beside the text:
// what a caller sent is never part of a statement's text.
import { isRaw, JsonProperty, Utils } from '@mikro-orm/core';
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

// The members of MikroORM's SQL connection that its own `execute` uses. They are protected or private in its
// types, so they are named here; the ORM's version is pinned (7.2.1), and the kit's tests run every service
// through this path.
interface ConnectionInternals {
  platform: { quoteIdentifier(identifier: string): string };
  ensureConnection(): Promise<void>;
  prepareQuery(query: unknown, params: unknown): { query: string; params: unknown[]; formatted: string };
  getSql(query: string, formatted: string, context?: unknown): string;
  executeQuery<T>(sql: string, run: () => Promise<T>, context: object): Promise<T>;
  transformRawResult<T>(result: unknown, method: string): T;
  getClient(): Kysely<unknown>;
  execute(query: unknown, params?: unknown, method?: string, ctx?: Transaction<unknown>, context?: object): unknown;
}

/** Makes the ORM send every statement, its own and `em.execute`'s, with server-bound parameters. */
export function bindOrmParameters(orm: MikroORM): void {
  const connection = orm.em.getConnection() as unknown as ConnectionInternals;
  const quoteIdentifier = (identifier: string) => connection.platform.quoteIdentifier(identifier);
  connection.execute = async (query, params = [], method = 'all', ctx, context = {}) => {
    await connection.ensureConnection();
    // MikroORM's own preparation: a query builder or raw fragment to text and `?` parameters, its onQuery hook,
    // and the formatted text, which is kept for its query log only.
    const prepared = connection.prepareQuery(query, params);
    const bound = bindParameters(prepared.query, prepared.params, quoteIdentifier);
    const logged = connection.getSql(prepared.query, prepared.formatted, context);
    return connection.executeQuery(
      logged,
      async () => {
        const result = await (ctx ?? connection.getClient()).executeQuery(CompiledQuery.raw(bound.text, bound.values));
        return connection.transformRawResult(result, method);
      },
      { ...prepared, ...context },
    );
  };
}
