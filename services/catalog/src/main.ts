// Composition root of the catalog service process.
import { runServiceMain } from '@billing/kit/service-main';
import { catalogService } from './definition.ts';

await runServiceMain(catalogService);
