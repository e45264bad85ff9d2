import { recordEvent } from '@billing/kit/outbox';
import { meterArchived } from '@billing/proto/events/catalog';
import { archiveMeterRow } from '../adapter/meter-repository.ts';
import type { Meter } from '../domain/types.ts';
import { eventContext, type WriteContext } from './context.ts';
import { getMeter } from './get-meter.ts';

/** Archives a meter: new features and charges may not use it; archiving twice changes nothing. */
export async function archiveMeter(ctx: WriteContext, key: string): Promise<Meter> {
  const current = await getMeter(ctx.em, key);
  if (current.archived) return current;
  const meter = await archiveMeterRow(ctx.em, key);
  await recordEvent(ctx.em, meterArchived, { meter }, eventContext(ctx, `meter:${key}`));
  return meter;
}
