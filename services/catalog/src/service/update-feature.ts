import { FailedPreconditionError, NotFoundError } from '@billing/kit/errors';
import { recordEvent } from '@billing/kit/outbox';
import { featureUpdated } from '@billing/proto/events/catalog';
import { features } from '../adapter/repository.ts';
import type { Feature } from '../domain/types.ts';
import { eventContext, type WriteContext } from './context.ts';

/**
 * Changes a feature's name and description (and revives it if archived). Its kind and meter are fixed:
 * plans and balances were built on them.
 */
export async function updateFeature(ctx: WriteContext, input: Feature): Promise<Feature> {
  const current = await features.find(ctx.em, input.key);
  if (!current) throw new NotFoundError('FEATURE_NOT_FOUND', `no feature "${input.key}"`);
  if (current.kind !== input.kind || current.meterKey !== input.meterKey) {
    throw new FailedPreconditionError('FEATURE_KIND_IMMUTABLE', `feature "${input.key}" cannot change kind or meter`);
  }
  const feature = await features.save(
    ctx.em,
    { ...current, name: input.name, description: input.description, archived: false },
    ctx.now,
  );
  await recordEvent(ctx.em, featureUpdated, { feature }, eventContext(ctx, `feature:${feature.key}`));
  return feature;
}
