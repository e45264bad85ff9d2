// Reads and writes of meter rows. A meter never changes once created, except its archived flag.
import type { Em } from '@billing/kit/db';
import type { Meter } from '../domain/types.ts';
import { MeterRow } from './entities.ts';
import { fromDbMeter, toDbMeterBody } from './mapping.ts';

/** The meter with this key, if any. */
export async function findMeter(em: Em, key: string): Promise<Meter | undefined> {
  const row = await em.findOne(MeterRow, { key });
  return row ? fromDbMeter(row) : undefined;
}

/** A page of meters ordered by key, after `after` (one more than `size`, to tell a next page). */
export async function listMeters(em: Em, page: { size: number; after: string | undefined }): Promise<Meter[]> {
  const rows = await em.find(MeterRow, page.after === undefined ? {} : { key: { $gt: page.after } }, {
    orderBy: { key: 'asc' },
    limit: page.size + 1,
  });
  return rows.map(fromDbMeter);
}

/** Every meter, archived ones too (a catalog holds hundreds at most). */
export async function allMeters(em: Em): Promise<Meter[]> {
  return (await em.find(MeterRow, {}, { orderBy: { key: 'asc' } })).map(fromDbMeter);
}

/** Inserts a meter. */
export async function insertMeter(em: Em, meter: Meter, now: Date): Promise<Meter> {
  const row = em.create(MeterRow, { key: meter.key, body: toDbMeterBody(meter), archived: false, createdAt: now });
  await em.flush();
  return fromDbMeter(row);
}

/** Marks a meter archived and returns it. */
export async function archiveMeterRow(em: Em, key: string): Promise<Meter> {
  const row = await em.findOneOrFail(MeterRow, { key });
  row.archived = true;
  await em.flush();
  return fromDbMeter(row);
}
