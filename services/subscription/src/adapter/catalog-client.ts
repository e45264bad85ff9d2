// The catalog as the subscription service sees it: published plan versions and add-ons, read over the
// catalog's API (the catalog is the authority; plan versions are copied locally once used, as they never
// change).
import { UnavailableError } from '@billing/kit/errors';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { addOnNotFound, planNotFound, planVersionNotFound } from '../domain/errors.ts';
import type { PlanCatalog } from '../service/plan-catalog.ts';

async function ask<T>(call: () => Promise<T>, notFound: () => Error): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.NotFound) throw notFound();
    throw new UnavailableError(`the catalog could not be asked: ${e.message}`, { cause: err });
  }
}

/** A catalog client over gRPC at `baseUrl` (e.g. http://127.0.0.1:7101). */
export function catalogClient(baseUrl: string): PlanCatalog {
  const client = createClient(CatalogService, createGrpcTransport({ baseUrl }));
  const timeoutMs = 5_000;
  return {
    async planVersion(planKey, version) {
      const res = await ask(
        () => client.getPlanVersion({ planKey, version }, { timeoutMs }),
        () => (version === 0 ? planNotFound(planKey) : planVersionNotFound(planKey, version)),
      );
      if (!res.version) throw planNotFound(planKey);
      return res.version;
    },
    async addOn(key) {
      const res = await ask(
        () => client.getAddOn({ key }, { timeoutMs }),
        () => addOnNotFound(key),
      );
      if (!res.addOn) throw addOnNotFound(key);
      return res.addOn;
    },
  };
}
