import type { Em } from '@billing/kit/db';
import { featureRepository } from '../adapter/feature-repository.ts';
import { featureNotFound } from '../domain/errors.ts';
import type { Feature } from '../domain/types.ts';

/** The feature with this key; NOT_FOUND when there is none. */
export async function getFeature(em: Em, key: string): Promise<Feature> {
  const feature = await featureRepository.find(em, key);
  if (!feature) throw featureNotFound(key);
  return feature;
}
