// Unit tests of reading catalog documents (pure: no database).
import { readFileSync } from 'node:fs';
import {
  BillingTiming,
  FeatureKind,
  LimitEnforcement,
  PriceModel,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import { describe, expect, test } from '@jest/globals';
import { readCatalogDocument } from '../src/domain/catalog-document.ts';

const example = readFileSync(new URL('../../../examples/catalog.yaml', import.meta.url), 'utf8');

describe('reading a catalog document', () => {
  test('the example catalog reads without violations into the contract messages', () => {
    const { document, violations } = readCatalogDocument(example, 'auto');
    expect(violations).toEqual([]);
    expect(document.meters.map((m) => m.key)).toEqual(['build_minutes', 'api_calls']);
    expect(document.features.find((f) => f.key === 'build_minutes')).toMatchObject({
      kind: FeatureKind.METERED,
      meterKey: 'build_minutes',
    });
    const team = document.plans.find((p) => p.key === 'team');
    expect(team?.spec.charges[0]).toMatchObject({
      key: 'seats',
      model: PriceModel.PER_SEAT,
      timing: BillingTiming.IN_ADVANCE,
      prices: [
        { currencyCode: 'USD', unitAmount: '15.00' },
        { currencyCode: 'EUR', unitAmount: '14.00' },
      ],
    });
    expect(team?.spec.entitlements[1]).toMatchObject({
      featureKey: 'build_minutes',
      value: { case: 'metered', value: { limit: '500', enforcement: LimitEnforcement.SOFT, overageAllowed: true } },
    });
    const business = document.plans.find((p) => p.key === 'business');
    expect(business?.spec.charges[1]?.prices[0]?.tiers.map((t) => [t.upTo, t.unitAmount])).toEqual([
      ['10000', '0.004'],
      ['', '0.003'],
    ]);
    expect(document.addOns[0]?.unitGrant).toMatchObject({
      featureKey: 'build_minutes',
      amount: '10000',
      expiryMonths: 12,
    });
  });

  test('JSON reads the same as YAML', () => {
    const yaml = 'features:\n  - { key: sso, name: SSO, kind: boolean }\n';
    const json = JSON.stringify({ features: [{ key: 'sso', name: 'SSO', kind: 'boolean' }] });
    expect(readCatalogDocument(json, 'auto').document).toEqual(readCatalogDocument(yaml, 'yaml').document);
  });

  test('unknown keys, bad enum values and wrong types are reported with their path', () => {
    const text = [
      'plans:',
      '  - key: team',
      '    name: Team',
      '    interval: fortnight',
      '    currencies: [USD]',
      '    trial_days: "14"',
      '    charges:',
      '      - { key: seats, name: Seats, model: per_seat, timing: in_advance, prices: { USD: "15" }, colour: red }',
    ].join('\n');
    expect(readCatalogDocument(text, 'yaml').violations.map((v) => v.field)).toEqual([
      'document.plans[0].interval',
      'document.plans[0].trial_days',
      'document.plans[0].charges[0].colour',
    ]);
  });

  test('a document that is not YAML at all is one clear violation, with the excerpt where it fails', () => {
    const { violations } = readCatalogDocument('plans: [unclosed', 'yaml');
    expect(violations).toHaveLength(1);
    expect(violations[0]?.field).toBe('document');
    expect(violations[0]?.description).toMatch(/^not valid YAML/);
    expect(violations[0]?.description).toMatch(/at line 1, column \d+:\n\nplans: \[unclosed\n +\^$/);
  });

  test('an unknown key at the top of the document is named under document', () => {
    expect(readCatalogDocument('{"plans": [], "colour": "red"}', 'json').violations).toEqual([
      { field: 'document.colour', description: 'unknown key' },
    ]);
  });

  test('a made-up key that is not a plain name is quoted in its path, as a prefix when long', () => {
    const long = 'x'.repeat(1_000);
    const text = JSON.stringify({
      'my plans': [],
      [long]: 1,
      plans: [{ key: 'team', name: 'Team', interval: 'month', 'trial days': 3 }],
    });
    expect(readCatalogDocument(text, 'json').violations.map((v) => v.field)).toEqual([
      'document["my plans"]',
      `document["${'x'.repeat(40)}…"]`,
      'document.plans[0]["trial days"]',
    ]);
  });
});
