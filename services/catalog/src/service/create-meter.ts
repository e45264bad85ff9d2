import { refuseViolations } from '@billing/kit/errors';
import { recordEvent } from '@billing/kit/outbox';
import { meterCreated } from '@billing/proto/events/catalog';
import { findMeter, insertMeter } from '../adapter/meter-repository.ts';
import { meterExists } from '../domain/errors.ts';
import type { Meter } from '../domain/types.ts';
import { validateMeter } from '../domain/validate.ts';
import { eventContext, type WriteContext } from './context.ts';

/** Creates a meter. Meters never change once created: usage already aggregated depends on them. */
export async function createMeter(ctx: WriteContext, input: Meter, prefix = 'meter'): Promise<Meter> {
  const violations = validateMeter(input, prefix);
  refuseViolations(violations, 'the meter is not valid');
  if (await findMeter(ctx.em, input.key)) throw meterExists(input.key);
  const meter = await insertMeter(ctx.em, input, ctx.now);
  await recordEvent(ctx.em, meterCreated, { meter }, eventContext(ctx, `meter:${meter.key}`));
  return meter;
}
