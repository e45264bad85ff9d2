import { recordEvent } from '@billing/kit/outbox';
import { featureArchived } from '@billing/proto/events/catalog';
import { featureRepository } from '../adapter/feature-repository.ts';
import type { Feature } from '../domain/types.ts';
import { eventContext, type WriteContext } from './context.ts';
import { getFeature } from './get-feature.ts';

/** Archives a feature; archiving an archived feature changes nothing. */
export async function archiveFeature(ctx: WriteContext, key: string): Promise<Feature> {
  const current = await getFeature(ctx.em, key);
  if (current.archived) return current;
  const feature = await featureRepository.save(ctx.em, { ...current, archived: true }, ctx.now);
  await recordEvent(ctx.em, featureArchived, { feature }, eventContext(ctx, `feature:${key}`));
  return feature;
}
