// The usage service's copy of the catalog's meters (the `meter` table), through MikroORM: plain reads by key or
// event type, and saves of single meters. Reads the caller only looks at skip the identity map, so a batch's
// transaction has nothing to check for changes when it commits.
import type { Em } from '@billing/kit/db';
import type { Meter } from '@billing/proto/billing/catalog/v1/resources_pb';
import { LockMode } from '@mikro-orm/core';
import { MeterRow } from './entities.ts';
import { fromDbMeter, toDbMeter } from './mapping.ts';

/** Every meter (archived ones too: published versions still bill them) reading events of one of `types`. */
export async function metersForTypes(em: Em, types: readonly string[]): Promise<Meter[]> {
  if (types.length === 0) return [];
  const rows = await em.find(MeterRow, { eventType: { $in: [...new Set(types)] } }, { disableIdentityMap: true });
  return rows.map(fromDbMeter);
}

/** The meters with these keys, archived or not, by key. */
export async function findMeters(em: Em, keys: readonly string[]): Promise<Map<string, Meter>> {
  if (keys.length === 0) return new Map();
  const rows = await em.find(MeterRow, { key: { $in: [...new Set(keys)] } }, { disableIdentityMap: true });
  return new Map(rows.map((row) => [row.key, fromDbMeter(row)]));
}

/** One meter by key, archived or not. */
export async function findMeter(em: Em, key: string): Promise<Meter | undefined> {
  const row = await em.findOne(MeterRow, { key }, { disableIdentityMap: true });
  return row ? fromDbMeter(row) : undefined;
}

/**
 * Inserts or replaces a meter of the projection, in the caller's transaction. `catalogSeq`, the catalog event's
 * number in the meter's sequence, keeps an older event (a parked one replayed late) from undoing a newer one:
 * the row is locked, and left as it is when it was saved from a later event. (Two replicas inserting the same new
 * meter at once: the second fails on the key and its consumer applies the event again, then finding the row.)
 */
export async function saveMeter(em: Em, meter: Meter, now: Date, catalogSeq?: number): Promise<void> {
  const row = await em.findOne(MeterRow, { key: meter.key }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  const savedFromLater = row?.catalogSeq != null && catalogSeq !== undefined && row.catalogSeq >= catalogSeq;
  if (savedFromLater) return;
  const values = toDbMeter(meter, now, catalogSeq);
  if (row) em.assign(row, values);
  else em.create(MeterRow, values);
  await em.flush();
}
