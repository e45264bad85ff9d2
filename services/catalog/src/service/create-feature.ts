import { refuseViolations } from '@billing/kit/errors';
import { recordEvent } from '@billing/kit/outbox';
import { featureUpdated } from '@billing/proto/events/catalog';
import { featureRepository } from '../adapter/feature-repository.ts';
import { featureExists } from '../domain/errors.ts';
import type { Feature } from '../domain/types.ts';
import { validateFeature } from '../domain/validate.ts';
import { loadCatalogLookup } from './catalog-lookup.ts';
import { eventContext, type WriteContext } from './context.ts';

/** Creates a feature, valid against the catalog (its fields named under `prefix`); its key must be new. */
export async function createFeature(ctx: WriteContext, input: Feature, prefix = 'feature'): Promise<Feature> {
  const violations = validateFeature(input, await loadCatalogLookup(ctx.em), prefix);
  refuseViolations(violations, 'the feature is not valid');
  if (await featureRepository.find(ctx.em, input.key)) throw featureExists(input.key);
  const feature = await featureRepository.save(ctx.em, { ...input, archived: false }, ctx.now);
  await recordEvent(ctx.em, featureUpdated, { feature }, eventContext(ctx, `feature:${feature.key}`));
  return feature;
}
