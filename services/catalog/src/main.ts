// Composition root of the catalog service process.
import { runServiceMain } from '@billing/kit/service-main';
import { catalogService } from './definition.ts';

/** Default port of the catalog API. */
export const CATALOG_PORT = 7101;

await runServiceMain(catalogService, CATALOG_PORT);
