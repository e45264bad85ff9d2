// The add-on rows.
import { AddOnSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { documentRepository } from './document-repository.ts';
import { AddOnRow } from './entities.ts';

/** Reads and writes of add-ons. */
export const addOnRepository = documentRepository(AddOnRow, AddOnSchema);
