// Reads and writes of a table keeping contract messages whole (features, add-ons): the key and archived flag
// in columns, the rest as the message's protobuf JSON. No business rules: use cases in service/ decide.
import type { Em } from '@billing/kit/db';
import type { MessageShape } from '@bufbuild/protobuf';
import type { DocumentEntity } from './entities.ts';
import { type DocumentSchema, fromDbDocument, toDbDocumentBody } from './mapping.ts';

/** The repository of one document table, typed by the protobuf schema of its messages. */
export function documentRepository<S extends DocumentSchema>(entity: DocumentEntity, schema: S) {
  return {
    /** The document with this key, if any. */
    async find(em: Em, key: string): Promise<MessageShape<S> | undefined> {
      const row = await em.findOne(entity, { key });
      return row ? fromDbDocument(schema, row) : undefined;
    },

    /** A page of documents ordered by key, after `after` (one more than `size`, to tell a next page). */
    async list(em: Em, page: { size: number; after: string | undefined; includeArchived: boolean }) {
      const rows = await em.find(
        entity,
        {
          ...(page.after === undefined ? {} : { key: { $gt: page.after } }),
          ...(page.includeArchived ? {} : { archived: false }),
        },
        { orderBy: { key: 'asc' }, limit: page.size + 1 },
      );
      return rows.map((row) => fromDbDocument(schema, row));
    },

    /** Every document, archived ones too, ordered by key (a catalog holds hundreds at most). */
    async all(em: Em): Promise<MessageShape<S>[]> {
      const rows = await em.find(entity, {}, { orderBy: { key: 'asc' } });
      return rows.map((row) => fromDbDocument(schema, row));
    },

    /** Inserts or replaces a document. */
    async save(em: Em, document: MessageShape<S> & { key: string; archived: boolean }, now: Date) {
      const values = { body: toDbDocumentBody(schema, document), archived: document.archived, updatedAt: now };
      const existing = await em.findOne(entity, { key: document.key });
      const row = existing
        ? em.assign(existing, values)
        : em.create(entity, { key: document.key, createdAt: now, ...values });
      await em.flush();
      return fromDbDocument(schema, row);
    },
  };
}
