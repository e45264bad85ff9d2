// The catalog as the subscription service sees it: published plan versions and add-ons, read over the
// catalog's API (the catalog is the authority; plan versions are copied locally once used, as they never
// change).
import { NotFoundError, UnavailableError } from '@billing/kit/errors';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import type { AddOn, PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';

/** What the subscription service asks the catalog. */
export interface PlanCatalog {
  /** A plan version (0: the latest published); NOT_FOUND PLAN_NOT_FOUND or PLAN_VERSION_NOT_FOUND if none. */
  planVersion(planKey: string, version: number): Promise<PlanVersion>;
  /** An add-on; NOT_FOUND ADDON_NOT_FOUND if none. */
  addOn(key: string): Promise<AddOn>;
}

async function ask<T>(call: () => Promise<T>, notFound: () => NotFoundError): Promise<T> {
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
        () =>
          version === 0
            ? new NotFoundError('PLAN_NOT_FOUND', `no published plan "${planKey}"`)
            : new NotFoundError('PLAN_VERSION_NOT_FOUND', `no version ${version} of plan "${planKey}"`),
      );
      if (!res.version) throw new NotFoundError('PLAN_NOT_FOUND', `no published plan "${planKey}"`);
      return res.version;
    },
    async addOn(key) {
      const res = await ask(
        () => client.getAddOn({ key }, { timeoutMs }),
        () => new NotFoundError('ADDON_NOT_FOUND', `no add-on "${key}"`),
      );
      if (!res.addOn) throw new NotFoundError('ADDON_NOT_FOUND', `no add-on "${key}"`);
      return res.addOn;
    },
  };
}
