import { AlreadyExistsError, InvalidArgumentError } from '@billing/kit/errors';
import { recordEvent } from '@billing/kit/outbox';
import { featureUpdated } from '@billing/proto/events/catalog';
import { features, loadLookup } from '../adapter/repository.ts';
import type { Feature } from '../domain/types.ts';
import { validateFeature } from '../domain/validate.ts';
import { eventContext, type WriteContext } from './context.ts';

/** Creates a feature; its key must be new. */
export async function createFeature(ctx: WriteContext, input: Feature, prefix = 'feature'): Promise<Feature> {
  const violations = validateFeature(input, await loadLookup(ctx.em), prefix);
  if (violations.length > 0) throw new InvalidArgumentError('the feature is not valid', violations);
  if (await features.find(ctx.em, input.key)) {
    throw new AlreadyExistsError('FEATURE_EXISTS', `a feature "${input.key}" already exists`);
  }
  const feature = await features.save(ctx.em, { ...input, archived: false }, ctx.now);
  await recordEvent(ctx.em, featureUpdated, { feature }, eventContext(ctx, `feature:${feature.key}`));
  return feature;
}
