// The meter a read names, which must exist: what the usage queries and the event listing share.
import type { Em } from '@billing/kit/db';
import type { Meter } from '@billing/proto/billing/catalog/v1/resources_pb';
import { findMeter } from '../adapter/meter-repository.ts';
import { meterNotFound } from '../domain/errors.ts';

/** The meter with key `key` (archived ones too), or NOT_FOUND. */
export async function requireMeter(em: Em, key: string): Promise<Meter> {
  const meter = await findMeter(em, key);
  if (!meter) throw meterNotFound(key);
  return meter;
}
