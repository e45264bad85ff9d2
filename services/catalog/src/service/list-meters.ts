import type { Em } from '@billing/kit/db';
import { listPage, type PageParameters } from '@billing/kit/pagination';
import { listMeters as listMeterRows } from '../adapter/meter-repository.ts';
import type { Meter } from '../domain/types.ts';

/** A page of meters ordered by key. */
export async function listMeters(em: Em, input: PageParameters) {
  return listPage(
    input,
    {},
    (page) => listMeterRows(em, page),
    (meter: Meter) => meter.key,
  );
}
