// The usage service's copy of the catalog's meters (the `meter` table). A single meter is read through MikroORM;
// the reads of every ingestion transaction and the save are one SQL statement each: the per-batch read runs on
// the ingestion hot path, where the ORM's query building and hydration cost several times its CPU, and the save
// is a guarded upsert (an older catalog event never undoes a newer one), which two writers of one new meter must
// meet in the database, not in a read-then-write.
import { type Em, queryBound } from '@billing/kit/db';
import type { Meter } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { JsonValue } from '@bufbuild/protobuf';
import { MeterRow } from './entities.ts';
import { fromDbMeter, toDbMeter } from './mapping.ts';

/** Every meter (archived ones too: published versions still bill them) reading events of one of `types`. */
export async function metersForTypes(em: Em, types: readonly string[]): Promise<Meter[]> {
  if (types.length === 0) return [];
  const rows = await queryBound<{ body: JsonValue; archived: boolean }>(
    em,
    'select body, archived from meter where event_type in (select jsonb_array_elements_text($1::jsonb))',
    [JSON.stringify([...new Set(types)])],
  );
  return rows.map(fromDbMeter);
}

/** The meters with these keys, archived or not, by key. */
export async function findMeters(em: Em, keys: readonly string[]): Promise<Map<string, Meter>> {
  if (keys.length === 0) return new Map();
  const rows = await queryBound<{ key: string; body: JsonValue; archived: boolean }>(
    em,
    'select key, body, archived from meter where key in (select jsonb_array_elements_text($1::jsonb))',
    [JSON.stringify([...new Set(keys)])],
  );
  return new Map(rows.map((row) => [row.key, fromDbMeter(row)]));
}

/** One meter by key, archived or not. */
export async function findMeter(em: Em, key: string): Promise<Meter | undefined> {
  const row = await em.findOne(MeterRow, { key }, { disableIdentityMap: true });
  return row ? fromDbMeter(row) : undefined;
}

/**
 * Inserts or replaces a meter of the projection, in the caller's transaction. `catalogSeq`, the catalog event's
 * number in the meter's sequence, keeps an older event (a parked one replayed late) from undoing a newer one: the
 * row is left as it is when it was saved from a later event. A second writer of the same new meter waits for the
 * first, then meets the guard.
 */
export async function saveMeter(em: Em, meter: Meter, now: Date, catalogSeq?: number): Promise<void> {
  const row = toDbMeter(meter, now, catalogSeq);
  await queryBound(
    em,
    `insert into meter (key, event_type, body, archived, updated_at, catalog_seq) values ($1, $2, $3::jsonb, $4, $5, $6)
     on conflict (key) do update set event_type = excluded.event_type, body = excluded.body,
       archived = excluded.archived, updated_at = excluded.updated_at, catalog_seq = excluded.catalog_seq
     where meter.catalog_seq is null or excluded.catalog_seq is null or meter.catalog_seq < excluded.catalog_seq`,
    [row.key, row.eventType, JSON.stringify(row.body), row.archived, row.updatedAt, row.catalogSeq],
  );
}
