// Keeping the copy of the catalog's meters: each meter.created or meter.archived event saves the meter as the
// event carries it, in the order of the meter's catalog sequence.
import type { Em } from '@billing/kit/db';
import type { Meter } from '@billing/proto/billing/catalog/v1/resources_pb';
import { saveMeter } from '../adapter/meter-repository.ts';

/**
 * Records `meter` as catalog event number `catalogSeq` of its sequence, at `at`, leaving it as it is when a later
 * event of the meter was applied first (a parked one replayed late).
 */
export async function recordMeter(em: Em, meter: Meter, at: Date, catalogSeq: number): Promise<void> {
  await saveMeter(em, meter, at, catalogSeq);
}
