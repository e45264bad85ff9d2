// The catalog as the subscription service reads it: published plan versions and add-ons, over the catalog's API
// (the catalog is the authority; plan versions are copied locally once used, as they never change). The
// catalog's errors are mapped by code: what it refuses as invalid stays INVALID_ARGUMENT, what it does not have
// is NOT_FOUND with this service's reasons, and only a catalog that cannot be reached, answered too late or whose
// connection broke mid-call is UNAVAILABLE (retry later). Anything else is a fault, INTERNAL.
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

// Codes that say the catalog could not be asked (down, too slow, the connection closed mid-call), not what it
// thinks of the request. This client never cancels or aborts a call of its own (only its deadline ends one), so
// CANCELED and ABORTED come from the connection: connect-node reports a stream the server's side closed as
// CANCELED ("http/2 stream closed with error code CANCEL").
const TRANSPORT_FAILURES = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Canceled, Code.Aborted]);
// Errors of the socket itself, which the client reports as INTERNAL or UNKNOWN with Node's error among the causes.
const SOCKET_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EPIPE',
  'ETIMEDOUT',
]);

/** Whether an error is Node's of a socket or of an HTTP/2 session or stream (a garbled reply is ERR_HTTP2_ERROR). */
function isConnectionError(err: object): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (SOCKET_ERRORS.has(code) || code.startsWith('ERR_HTTP2_'));
}

/** Whether a failed call never reached the catalog, or never heard back from it. */
function isTransportFailure(err: ConnectError): boolean {
  if (TRANSPORT_FAILURES.has(err.code)) return true;
  if (err.code !== Code.Internal && err.code !== Code.Unknown) return false;
  // The connection's error may be wrapped more than once; a cause seen before ends the walk.
  const seen = new Set<object>();
  let cause: unknown = err.cause;
  while (typeof cause === 'object' && cause !== null && !seen.has(cause)) {
    if (isConnectionError(cause)) return true;
    seen.add(cause);
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
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
    async planVersion({ planKey, version, fields }) {
      const res = await ask(
        () => client.getPlanVersion({ planKey, version }, { timeoutMs: TIMEOUT_MS }),
        () => (version === 0 ? planNotFound(planKey) : planVersionNotFound(planKey, version)),
        { plan_key: fields.planKey, version: fields.version },
      );
      if (!res.version) throw planNotFound(planKey);
      return res.version;
    },
    async addOn({ key, field }) {
      const res = await ask(
        () => client.getAddOn({ key }, { timeoutMs: TIMEOUT_MS }),
        () => addOnNotFound(key),
        { key: field },
      );
      if (!res.addOn) throw addOnNotFound(key);
      return res.addOn;
    },
  };
}
