// The shape of a schema change, shared by the kit's own tables and every service's migrations; the database
// module applies them.

/** A schema change written as plain SQL statements; applied once, in order, inside a transaction. */
export interface SqlMigration {
  /** Unique, sortable name such as `0001_catalog`. */
  name: string;
  /** The statements, run in order. */
  statements: readonly string[];
}
