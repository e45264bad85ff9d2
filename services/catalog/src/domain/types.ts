// The catalog's domain objects are the messages of its contract: the catalog IS a published contract, and
// a second, hand-written model of the same shapes would only be a twin to keep in step.

import type {
  AddOnSchema,
  ChargeSchema,
  FeatureSchema,
  MeterSchema,
  PlanEntitlementSchema,
  PlanSchema,
  PlanVersionSchema,
  PlanVersionSpecSchema,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import type { MessageShape } from '@bufbuild/protobuf';

/** A feature. */
export type Feature = MessageShape<typeof FeatureSchema>;
/** A meter. */
export type Meter = MessageShape<typeof MeterSchema>;
/** A plan (key, status, version pointers). */
export type Plan = MessageShape<typeof PlanSchema>;
/** One version of a plan. */
export type PlanVersion = MessageShape<typeof PlanVersionSchema>;
/** The editable content of a plan version. */
export type PlanVersionSpec = MessageShape<typeof PlanVersionSpecSchema>;
/** One charge of a plan or add-on. */
export type Charge = MessageShape<typeof ChargeSchema>;
/** One entitlement of a plan or add-on. */
export type PlanEntitlement = MessageShape<typeof PlanEntitlementSchema>;
/** An add-on. */
export type AddOn = MessageShape<typeof AddOnSchema>;

/** Keys of features, meters, plans, charges and add-ons: lower snake case, 1-64 characters. */
export const KEY_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;

/** What validation needs to know about the rest of the catalog. */
export interface CatalogLookup {
  /** The feature with this key, if any. */
  feature(key: string): Feature | undefined;
  /** The meter with this key, if any. */
  meter(key: string): Meter | undefined;
}
