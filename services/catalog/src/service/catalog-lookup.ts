// What validating a plan, a feature or an add-on needs to know of the rest of the catalog.
import type { Em } from '@billing/kit/db';
import { featureRepository } from '../adapter/feature-repository.ts';
import { allMeters } from '../adapter/meter-repository.ts';
import type { CatalogLookup, Feature, Meter } from '../domain/types.ts';

/** Every feature and meter, archived ones too, with lookups by key (a catalog holds hundreds at most). */
export async function loadCatalogLookup(em: Em): Promise<CatalogLookup & { features: Feature[]; meters: Meter[] }> {
  const features = await featureRepository.all(em);
  const meters = await allMeters(em);
  const featureByKey = new Map(features.map((f) => [f.key, f]));
  const meterByKey = new Map(meters.map((m) => [m.key, m]));
  return {
    features,
    meters,
    feature: (key) => featureByKey.get(key),
    meter: (key) => meterByKey.get(key),
  };
}
