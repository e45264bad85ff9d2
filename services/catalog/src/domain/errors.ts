// The catalog's errors: the reasons it answers with (google.rpc.ErrorInfo) and one constructor per error, which
// is all the rest of the service calls. Messages are public and quote a caller's value only through `quote()`.
import {
  AlreadyExistsError,
  FailedPreconditionError,
  type FieldViolation,
  InvalidArgumentError,
  NotFoundError,
  quote,
} from '@billing/kit/errors';

/** The reasons of the catalog's refusals (bad input is the kit's INVALID_ARGUMENT). */
export const CatalogReason = {
  FEATURE_NOT_FOUND: 'FEATURE_NOT_FOUND',
  METER_NOT_FOUND: 'METER_NOT_FOUND',
  PLAN_NOT_FOUND: 'PLAN_NOT_FOUND',
  PLAN_VERSION_NOT_FOUND: 'PLAN_VERSION_NOT_FOUND',
  ADD_ON_NOT_FOUND: 'ADD_ON_NOT_FOUND',
  FEATURE_EXISTS: 'FEATURE_EXISTS',
  METER_EXISTS: 'METER_EXISTS',
  PLAN_EXISTS: 'PLAN_EXISTS',
  PLAN_ARCHIVED: 'PLAN_ARCHIVED',
  NO_DRAFT: 'NO_DRAFT',
  VERSION_IMMUTABLE: 'VERSION_IMMUTABLE',
  DRAFT_VERSION_MISMATCH: 'DRAFT_VERSION_MISMATCH',
  FEATURE_KIND_IMMUTABLE: 'FEATURE_KIND_IMMUTABLE',
  CATALOG_CONFLICT: 'CATALOG_CONFLICT',
} as const;

/** Bad input: `what` names the object (`the feature`), `violations` every offending field. */
export function notValid(what: string, violations: readonly FieldViolation[]): InvalidArgumentError {
  return new InvalidArgumentError(`${what} is not valid`, violations);
}

/** A draft that was valid when saved no longer is: features or meters it uses were archived since. */
export function draftNoLongerValid(violations: readonly FieldViolation[]): InvalidArgumentError {
  return new InvalidArgumentError('the draft is no longer valid', violations);
}

/** A required field of a request is missing. */
export function fieldRequired(field: string): InvalidArgumentError {
  return new InvalidArgumentError(`${field} is required`, [{ field, description: 'required' }]);
}

/** No feature has this key. */
export function featureNotFound(key: string): NotFoundError {
  return new NotFoundError(CatalogReason.FEATURE_NOT_FOUND, `no feature ${quote(key)}`);
}

/** No meter has this key. */
export function meterNotFound(key: string): NotFoundError {
  return new NotFoundError(CatalogReason.METER_NOT_FOUND, `no meter ${quote(key)}`);
}

/** No plan has this key. */
export function planNotFound(key: string): NotFoundError {
  return new NotFoundError(CatalogReason.PLAN_NOT_FOUND, `no plan ${quote(key)}`);
}

/** The plan has no such version (or, asked for its latest, none published yet). */
export function planVersionNotFound(planKey: string, version: number): NotFoundError {
  return new NotFoundError(CatalogReason.PLAN_VERSION_NOT_FOUND, `plan ${quote(planKey)} has no version ${version}`);
}

/** No add-on has this key. */
export function addOnNotFound(key: string): NotFoundError {
  return new NotFoundError(CatalogReason.ADD_ON_NOT_FOUND, `no add-on ${quote(key)}`);
}

/** A feature with this key exists already. */
export function featureExists(key: string): AlreadyExistsError {
  return new AlreadyExistsError(CatalogReason.FEATURE_EXISTS, `a feature ${quote(key)} already exists`);
}

/** A meter with this key exists already. */
export function meterExists(key: string): AlreadyExistsError {
  return new AlreadyExistsError(CatalogReason.METER_EXISTS, `a meter ${quote(key)} already exists`);
}

/** A plan with this key exists already. */
export function planExists(key: string): AlreadyExistsError {
  return new AlreadyExistsError(CatalogReason.PLAN_EXISTS, `a plan ${quote(key)} already exists`);
}

/** The plan is archived: its draft can be neither edited nor published. */
export function planArchived(planKey: string): FailedPreconditionError {
  return new FailedPreconditionError(CatalogReason.PLAN_ARCHIVED, `plan ${quote(planKey)} is archived`);
}

/** The plan has no draft to publish. */
export function noDraft(planKey: string): FailedPreconditionError {
  return new FailedPreconditionError(CatalogReason.NO_DRAFT, `plan ${quote(planKey)} has no draft`);
}

/** The version named is published, and published versions never change. */
export function versionImmutable(planKey: string, version: number): FailedPreconditionError {
  return new FailedPreconditionError(
    CatalogReason.VERSION_IMMUTABLE,
    `version ${version} of ${quote(planKey)} is published`,
  );
}

/** The version named is not the plan's draft. */
export function draftVersionMismatch(planKey: string, draftVersion: number): FailedPreconditionError {
  return new FailedPreconditionError(
    CatalogReason.DRAFT_VERSION_MISMATCH,
    `the draft of ${quote(planKey)} is version ${draftVersion}`,
  );
}

/** A feature's kind and meter are fixed once created. */
export function featureKindImmutable(key: string): FailedPreconditionError {
  return new FailedPreconditionError(
    CatalogReason.FEATURE_KIND_IMMUTABLE,
    `feature ${quote(key)} cannot change kind or meter`,
  );
}

// Conflicts named in a message, at most: a document conflicting everywhere still answers briefly.
const MAX_NAMED_CONFLICTS = 5;

/** A catalog document would change what cannot change (`conflicts`: one sentence each). */
export function catalogConflict(conflicts: readonly string[]): FailedPreconditionError {
  const named = conflicts.slice(0, MAX_NAMED_CONFLICTS).join('; ');
  const more = conflicts.length > MAX_NAMED_CONFLICTS ? ` (and ${conflicts.length - MAX_NAMED_CONFLICTS} more)` : '';
  return new FailedPreconditionError(CatalogReason.CATALOG_CONFLICT, `${named}${more}`);
}
