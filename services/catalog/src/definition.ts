// The catalog service as the runtime runs it: its data, its API and its wiring.
import type { ServiceDefinition } from '@billing/kit/runtime';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { CATALOG_ENTITIES } from './adapter/entities.ts';
import { CATALOG_MIGRATIONS } from './migrations/index.ts';
import { catalogHandlers } from './rpc/catalog-handlers.ts';

/** The catalog service definition. */
export const catalogService: ServiceDefinition = {
  name: 'catalog',
  defaultPort: 7101,
  entities: CATALOG_ENTITIES,
  migrations: CATALOG_MIGRATIONS,
  services: [CatalogService],
  routes(router, context) {
    router.service(CatalogService, catalogHandlers(context));
  },
};
