// The feature rows.
import { FeatureSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { documentRepository } from './document-repository.ts';
import { FeatureRow } from './entities.ts';

/** Reads and writes of features. */
export const featureRepository = documentRepository(FeatureRow, FeatureSchema);
