// Catalog objects tests of every service build on: the `team` plan of the acceptance scenario S1 (docs/product.md)
// and its build minutes meter and features.

import {
  BillingTiming,
  FeatureKind,
  FeatureSchema,
  LimitEnforcement,
  MeterAggregation,
  MeterSchema,
  type PlanVersionSpec,
  PlanVersionSpecSchema,
  PriceModel,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import { BillingInterval } from '@billing/proto/billing/type/v1/types_pb';
import { create } from '@bufbuild/protobuf';

/** The build minutes meter. */
export const buildMinutesMeter = create(MeterSchema, {
  key: 'build_minutes',
  name: 'Build minutes',
  eventType: 'build.finished',
  aggregation: MeterAggregation.SUM,
  valueProperty: 'minutes',
});

/** The private repositories feature (boolean). */
export const privateRepos = create(FeatureSchema, {
  key: 'private_repos',
  name: 'Private repositories',
  kind: FeatureKind.BOOLEAN,
});

/** The build minutes feature (metered). */
export const buildMinutes = create(FeatureSchema, {
  key: 'build_minutes',
  name: 'Build minutes',
  kind: FeatureKind.METERED,
  meterKey: 'build_minutes',
});

/** S1's `team` plan: $15 per seat in advance, 500 build minutes included then $0.005, soft limit. */
export function teamSpec(overrides: Partial<PlanVersionSpec> = {}): PlanVersionSpec {
  const spec = create(PlanVersionSpecSchema, {
    name: 'Team',
    interval: BillingInterval.MONTH,
    currencyCodes: ['USD'],
    trialDays: 0,
    charges: [
      {
        key: 'seats',
        name: 'Seats',
        model: PriceModel.PER_SEAT,
        timing: BillingTiming.IN_ADVANCE,
        prices: [{ currencyCode: 'USD', unitAmount: '15.00' }],
      },
      {
        key: 'build_minutes',
        name: 'Build minutes',
        model: PriceModel.PER_UNIT,
        timing: BillingTiming.IN_ARREARS,
        meterKey: 'build_minutes',
        includedUnits: '500',
        prices: [{ currencyCode: 'USD', unitAmount: '0.005' }],
      },
    ],
    entitlements: [
      { featureKey: 'private_repos', value: { case: 'enabled', value: true } },
      {
        featureKey: 'build_minutes',
        value: { case: 'metered', value: { limit: '500', enforcement: LimitEnforcement.SOFT, overageAllowed: true } },
      },
    ],
  });
  return Object.assign(spec, overrides);
}
