// The catalog as the subscription service asks it: published plan versions and add-ons. Requests that need them
// read them before their transaction opens, so a call to the catalog never holds a database transaction.
import type { AddOn, PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { PlanRef } from '../domain/validate.ts';

/** What the subscription service asks the catalog (the catalog client in adapter/ answers). */
export interface PlanCatalog {
  /** A plan version (0: the latest published); NOT_FOUND PLAN_NOT_FOUND or PLAN_VERSION_NOT_FOUND if none. */
  planVersion(planKey: string, version: number): Promise<PlanVersion>;
  /** An add-on; NOT_FOUND ADD_ON_NOT_FOUND if none. */
  addOn(key: string): Promise<AddOn>;
}

/** The plan version a request names, as the catalog has it. */
export function readPlanVersion(catalog: PlanCatalog, plan: PlanRef): Promise<PlanVersion> {
  return catalog.planVersion(plan.planKey, plan.version);
}

/** The add-ons with these keys, read one by one. */
export async function readAddOns(catalog: PlanCatalog, keys: readonly string[]): Promise<ReadonlyMap<string, AddOn>> {
  const addOns = new Map<string, AddOn>();
  for (const key of keys) addOns.set(key, await catalog.addOn(key));
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
export async function readPlanTerms(catalog: PlanCatalog, plan: PlanRef, addOnKeys: readonly string[]) {
  const version = await readPlanVersion(catalog, plan);
  return { version, addOns: await readAddOns(catalog, addOnKeys) } satisfies PlanTerms;
}
