// The catalog as the subscription service asks it: published plan versions and add-ons. Requests that need them
// read them before their transaction opens, so a call to the catalog never holds a database transaction.
import type { AddOn, PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { AddOnRef, PlanRef } from '../domain/validate.ts';

/**
 * What the subscription service asks the catalog (the catalog client in adapter/ answers). What the catalog
 * refuses as invalid is INVALID_ARGUMENT naming the fields of the request being served, which a reference holds.
 */
export interface PlanCatalog {
  /** A plan version (0: the latest published); NOT_FOUND PLAN_NOT_FOUND or PLAN_VERSION_NOT_FOUND if none. */
  planVersion(plan: PlanRef): Promise<PlanVersion>;
  /** An add-on; NOT_FOUND ADD_ON_NOT_FOUND if none. */
  addOn(addOn: AddOnRef): Promise<AddOn>;
}

/** The add-ons a request names, read one by one, by key. */
export async function readAddOns(catalog: PlanCatalog, refs: readonly AddOnRef[]): Promise<ReadonlyMap<string, AddOn>> {
  const addOns = new Map<string, AddOn>();
  for (const ref of refs) addOns.set(ref.key, await catalog.addOn(ref));
  return addOns;
}

/** A plan version and the add-ons a request names, as the catalog has them. */
export interface PlanTerms {
  /** The plan version asked for. */
  version: PlanVersion;
  /** The add-ons named, by key. */
  addOns: ReadonlyMap<string, AddOn>;
}

/** Reads the plan version and add-ons a request names. */
export async function readPlanTerms(catalog: PlanCatalog, plan: PlanRef, addOns: readonly AddOnRef[]) {
  const version = await catalog.planVersion(plan);
  return { version, addOns: await readAddOns(catalog, addOns) } satisfies PlanTerms;
}
