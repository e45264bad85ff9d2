import type { Em } from '@billing/kit/db';
import { findMeter } from '../adapter/meter-repository.ts';
import { meterNotFound } from '../domain/errors.ts';
import type { Meter } from '../domain/types.ts';

/** The meter with this key; NOT_FOUND when there is none. */
export async function getMeter(em: Em, key: string): Promise<Meter> {
  const meter = await findMeter(em, key);
  if (!meter) throw meterNotFound(key);
  return meter;
}
