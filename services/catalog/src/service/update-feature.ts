import { recordEvent } from '@billing/kit/outbox';
import { featureUpdated } from '@billing/proto/events/catalog';
import { featureRepository } from '../adapter/feature-repository.ts';
import { featureKindImmutable } from '../domain/errors.ts';
import type { Feature } from '../domain/types.ts';
import { eventContext, type WriteContext } from './context.ts';
import { getFeature } from './get-feature.ts';

/**
 * Changes a feature's name and description (and revives it if archived). Its kind and meter are fixed:
 * plans and balances were built on them.
 */
export async function updateFeature(ctx: WriteContext, input: Feature): Promise<Feature> {
  const current = await getFeature(ctx.em, input.key);
  if (current.kind !== input.kind || current.meterKey !== input.meterKey) throw featureKindImmutable(input.key);
  const feature = await featureRepository.save(
    ctx.em,
    { ...current, name: input.name, description: input.description, archived: false },
    ctx.now,
  );
  await recordEvent(ctx.em, featureUpdated, { feature }, eventContext(ctx, `feature:${feature.key}`));
  return feature;
}
