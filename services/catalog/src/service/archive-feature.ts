import { NotFoundError } from '@billing/kit/errors';
import { recordEvent } from '@billing/kit/outbox';
import { featureArchived } from '@billing/proto/events/catalog';
import { features } from '../adapter/repository.ts';
import type { Feature } from '../domain/types.ts';
import { eventContext, type WriteContext } from './context.ts';

/** Archives a feature; archiving an archived feature changes nothing. */
export async function archiveFeature(ctx: WriteContext, key: string): Promise<Feature> {
  const current = await features.find(ctx.em, key);
  if (!current) throw new NotFoundError('FEATURE_NOT_FOUND', `no feature "${key}"`);
  if (current.archived) return current;
  const feature = await features.save(ctx.em, { ...current, archived: true }, ctx.now);
  await recordEvent(ctx.em, featureArchived, { feature }, eventContext(ctx, `feature:${key}`));
  return feature;
}
