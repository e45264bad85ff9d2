// Unit tests of catalog validation (pure: no database).

import {
  AddOnSchema,
  BillingTiming,
  ChargePriceSchema,
  FeatureKind,
  FeatureSchema,
  LimitEnforcement,
  MeterAggregation,
  MeterSchema,
  PlanEntitlementSchema,
  PriceModel,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import { buildMinutes, buildMinutesMeter, privateRepos, teamSpec } from '@billing/test/harness';
import { create } from '@bufbuild/protobuf';
import { describe, expect, test } from '@jest/globals';
import type { CatalogLookup } from '../src/domain/types.ts';
import { validateAddOn, validateFeature, validateMeter, validatePlanSpec } from '../src/domain/validate.ts';

const lookup: CatalogLookup = {
  feature: (key) => [privateRepos, buildMinutes].find((f) => f.key === key),
  meter: (key) => (key === buildMinutesMeter.key ? buildMinutesMeter : undefined),
};

const fields = (violations: { field: string }[]) => violations.map((v) => v.field);

describe('plan versions', () => {
  test('the team plan of S1 is valid', () => {
    expect(validatePlanSpec(teamSpec(), lookup)).toEqual([]);
  });

  test('tiers must be ascending, contiguous and end unbounded', () => {
    const tiered = teamSpec();
    const charge = tiered.charges[1];
    if (!charge) throw new Error('fixture');
    charge.model = PriceModel.TIERED_GRADUATED;
    charge.prices = [
      create(ChargePriceSchema, {
        currencyCode: 'USD',
        tiers: [
          { upTo: '1000', unitAmount: '0.01' },
          { upTo: '500', unitAmount: '0.008' },
          { upTo: '2000', unitAmount: '0.005' },
        ],
      }),
    ];
    expect(fields(validatePlanSpec(tiered, lookup))).toEqual([
      'spec.charges[1].prices[0].tiers[1].up_to',
      'spec.charges[1].prices[0].tiers[2].up_to',
    ]);
  });

  test('currencies must be ISO 4217 and every charge priced in each', () => {
    const spec = teamSpec({ currencyCodes: ['USD', 'XYZ', 'EUR'] });
    expect(fields(validatePlanSpec(spec, lookup))).toEqual([
      'spec.currency_codes[1]',
      'spec.charges[0].prices',
      'spec.charges[0].prices',
      'spec.charges[1].prices',
      'spec.charges[1].prices',
    ]);
  });

  test('metered charges and entitlements must reference existing meters and features', () => {
    const spec = teamSpec();
    const [seats, minutes] = spec.charges;
    if (!seats || !minutes) throw new Error('fixture');
    minutes.meterKey = 'no_such_meter';
    spec.entitlements.push(
      create(PlanEntitlementSchema, { featureKey: 'ghost', value: { case: 'enabled', value: true } }),
    );
    const violations = validatePlanSpec(spec, lookup);
    expect(violations).toContainEqual({ field: 'spec.charges[1].meter_key', description: 'no meter "no_such_meter"' });
    expect(violations).toContainEqual({ field: 'spec.entitlements[2].feature_key', description: 'no feature "ghost"' });
  });

  const metered = (featureKey: string, enforcement: LimitEnforcement, overageAllowed: boolean) =>
    create(PlanEntitlementSchema, {
      featureKey,
      value: { case: 'metered', value: { limit: '500', enforcement, overageAllowed } },
    });

  test('an entitlement must match its feature kind', () => {
    const spec = teamSpec({ charges: [] });
    spec.entitlements = [metered('private_repos', LimitEnforcement.SOFT, false)];
    expect(fields(validatePlanSpec(spec, lookup))).toEqual(['spec.entitlements[0]']);
  });

  test('overage needs a soft limit and a usage charge on the meter', () => {
    const spec = teamSpec({ charges: [] });
    spec.entitlements = [metered('build_minutes', LimitEnforcement.HARD, true)];
    expect(validatePlanSpec(spec, lookup)).toEqual([
      { field: 'spec.entitlements[0].metered.overage_allowed', description: 'a hard limit allows no overage' },
      {
        field: 'spec.entitlements[0].metered.overage_allowed',
        description: 'overage needs a usage charge on meter "build_minutes"',
      },
    ]);
  });

  test('amounts must be non-negative decimal strings', () => {
    const spec = teamSpec();
    const seats = spec.charges[0]?.prices[0];
    if (!seats) throw new Error('fixture');
    seats.unitAmount = '1e3';
    const minutes = spec.charges[1];
    if (!minutes) throw new Error('fixture');
    minutes.includedUnits = '-5';
    expect(fields(validatePlanSpec(spec, lookup))).toEqual([
      'spec.charges[0].prices[0].unit_amount',
      'spec.charges[1].included_units',
    ]);
  });

  test('usage charges are billed in arrears', () => {
    const spec = teamSpec();
    const minutes = spec.charges[1];
    if (!minutes) throw new Error('fixture');
    minutes.timing = BillingTiming.IN_ADVANCE;
    expect(fields(validatePlanSpec(spec, lookup))).toEqual(['spec.charges[1].timing']);
  });

  test('a seat charge takes no meter', () => {
    const spec = teamSpec();
    const seats = spec.charges[0];
    if (!seats) throw new Error('fixture');
    seats.meterKey = 'build_minutes';
    expect(fields(validatePlanSpec(spec, lookup))).toEqual(['spec.charges[0].meter_key']);
  });
});

describe('meters and features', () => {
  test('a sum needs a value property', () => {
    expect(
      fields(
        validateMeter(create(MeterSchema, { key: 'm', name: 'M', eventType: 'e', aggregation: MeterAggregation.SUM })),
      ),
    ).toEqual(['meter.value_property']);
  });

  test('a count needs none', () => {
    expect(
      validateMeter(create(MeterSchema, { key: 'm', name: 'M', eventType: 'e', aggregation: MeterAggregation.COUNT })),
    ).toEqual([]);
  });

  test('keys are lower snake case', () => {
    expect(
      fields(validateFeature(create(FeatureSchema, { key: 'Bad-Key', name: 'x', kind: FeatureKind.BOOLEAN }), lookup)),
    ).toEqual(['feature.key']);
  });

  test('a metered feature needs an existing meter', () => {
    expect(
      fields(
        validateFeature(
          create(FeatureSchema, { key: 'f', name: 'F', kind: FeatureKind.METERED, meterKey: 'nope' }),
          lookup,
        ),
      ),
    ).toEqual(['feature.meter_key']);
  });
});

describe('add-ons', () => {
  test('a prepaid pack needs a price per currency and a grant of a metered feature', () => {
    const pack = create(AddOnSchema, {
      key: 'minutes_pack',
      name: 'Pack',
      currencyCodes: ['USD', 'EUR'],
      oneOffPrices: [{ currencyCode: 'USD', amount: '40.00' }],
      unitGrant: { featureKey: 'private_repos', amount: '10000', expiryMonths: 12 },
    });
    expect(fields(validateAddOn(pack, lookup))).toEqual(['add_on.unit_grant.feature_key', 'add_on.one_off_prices']);
  });
});
