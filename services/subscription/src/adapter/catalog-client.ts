// The catalog as the subscription service reads it: published plan versions and add-ons, over the catalog's API
// (the catalog is the authority; plan versions are copied locally once used, as they never change). The
// catalog's errors are mapped by code: what it refuses as invalid stays INVALID_ARGUMENT, what it does not have
// is NOT_FOUND with this service's reasons, and only a catalog that cannot be reached or answered too late is
// UNAVAILABLE (retry later). Anything else is a fault, INTERNAL.
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { BadRequestSchema } from '@billing/proto/google/rpc/error_details_pb';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import {
  addOnNotFound,
  catalogUnavailable,
  invalidArgument,
  planNotFound,
  planVersionNotFound,
} from '../domain/errors.ts';
import type { PlanCatalog } from '../service/plan-catalog.ts';

/** How long a call to the catalog may take. */
const TIMEOUT_MS = 5_000;

// Codes that say the catalog could not be asked (down, too slow), not what it thinks of the request.
const TRANSPORT_FAILURES = new Set([Code.Unavailable, Code.DeadlineExceeded]);
// Errors of the connection itself, which the client reports as INTERNAL with the socket's error as the cause.
const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EPIPE',
  'ETIMEDOUT',
]);

/** Whether a failed call never reached the catalog, or never heard back from it. */
function isTransportFailure(err: ConnectError): boolean {
  if (TRANSPORT_FAILURES.has(err.code)) return true;
  const code = (err.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && CONNECTION_ERRORS.has(code);
}

/**
 * Calls the catalog; maps its refusals by code. `fields` renames the catalog's request fields to those of the
 * request being served, so that an INVALID_ARGUMENT names the caller's field.
 */
async function ask<T>(
  call: () => Promise<T>,
  notFound: () => Error,
  fields: Readonly<Record<string, string>>,
): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.NotFound) throw notFound();
    if (e.code === Code.InvalidArgument) {
      const violations = e
        .findDetails(BadRequestSchema)
        .flatMap((d) => d.fieldViolations)
        .map((v) => ({ field: fields[v.field] ?? v.field, description: v.description }));
      throw invalidArgument('the catalog refused the request', violations);
    }
    if (isTransportFailure(e)) throw catalogUnavailable(`the catalog could not be asked: ${e.message}`, err);
    throw new Error(`the catalog answered ${Code[e.code]}: ${e.message}`, { cause: err });
  }
}

/** A catalog client over gRPC at `baseUrl` (e.g. http://127.0.0.1:7101). */
export function catalogClient(baseUrl: string): PlanCatalog {
  const client = createClient(CatalogService, createGrpcTransport({ baseUrl }));
  return {
    async planVersion(planKey, version) {
      const res = await ask(
        () => client.getPlanVersion({ planKey, version }, { timeoutMs: TIMEOUT_MS }),
        () => (version === 0 ? planNotFound(planKey) : planVersionNotFound(planKey, version)),
        { plan_key: 'plan_key', version: 'plan_version' },
      );
      if (!res.version) throw planNotFound(planKey);
      return res.version;
    },
    async addOn(key) {
      const res = await ask(
        () => client.getAddOn({ key }, { timeoutMs: TIMEOUT_MS }),
        () => addOnNotFound(key),
        { key: 'addon_key' },
      );
      if (!res.addOn) throw addOnNotFound(key);
      return res.addOn;
    },
  };
}
