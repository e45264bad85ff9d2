// Validation of catalog objects and the inputs of use cases. Each object check returns every violation it finds
// (field path and what is wrong), so a caller fixes a document in one round; an empty list means valid. The
// readers at the end build a use case's input from its request, or throw INVALID_ARGUMENT naming the fields.

import { type FieldViolation, quote, refuseViolations } from '@billing/kit/errors';
import { isCurrencyCode, parseDecimal } from '@billing/money';
import { CatalogFormat } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import {
  BillingTiming,
  FeatureKind,
  FilterOperator,
  LimitEnforcement,
  MeterAggregation,
  PriceModel,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import { BillingInterval } from '@billing/proto/billing/type/v1/types_pb';
import { type CatalogDocument, readCatalogDocument } from './catalog-document.ts';
import { fieldRequired, notValid } from './errors.ts';
import {
  type AddOn,
  type CatalogLookup,
  type Charge,
  type Feature,
  KEY_PATTERN,
  type Meter,
  type PlanEntitlement,
  type PlanVersionSpec,
} from './types.ts';

type Violations = FieldViolation[];

const MAX_NAME = 200;
const MAX_DESCRIPTION = 2_000;

function checkKey(out: Violations, field: string, key: string): void {
  if (!KEY_PATTERN.test(key)) out.push({ field, description: 'must be lower snake case, 1-64 characters' });
}

function checkName(out: Violations, field: string, name: string, required = true): void {
  if (required && name.trim() === '') out.push({ field, description: 'required' });
  if (name.length > MAX_NAME) out.push({ field, description: `at most ${MAX_NAME} characters` });
}

function checkDescription(out: Violations, field: string, text: string): void {
  if (text.length > MAX_DESCRIPTION) out.push({ field, description: `at most ${MAX_DESCRIPTION} characters` });
}

/** Parses a non-negative decimal field, recording a violation and returning undefined if it is not one. */
function checkAmount(
  out: Violations,
  field: string,
  value: string,
  options: { required: boolean; positive?: boolean; integer?: boolean },
) {
  if (value === '') {
    if (options.required) out.push({ field, description: 'required' });
    return undefined;
  }
  let amount: ReturnType<typeof parseDecimal>;
  try {
    amount = parseDecimal(value);
  } catch {
    out.push({ field, description: 'must be a decimal string such as "15.00" (at most 12 decimals)' });
    return undefined;
  }
  if (amount.isNegative()) out.push({ field, description: 'must not be negative' });
  else if (options.positive && amount.isZero()) out.push({ field, description: 'must be greater than zero' });
  else if (options.integer && !amount.isInteger()) out.push({ field, description: 'must be a whole number' });
  return amount;
}

function checkUniqueKeys(out: Violations, field: string, keys: readonly string[]): void {
  const seen = new Set<string>();
  keys.forEach((key, i) => {
    if (seen.has(key)) out.push({ field: `${field}[${i}].key`, description: `duplicate key ${quote(key)}` });
    seen.add(key);
  });
}

/** Validates a new feature against the catalog. */
export function validateFeature(feature: Feature, lookup: CatalogLookup, prefix = 'feature'): Violations {
  const out: Violations = [];
  checkKey(out, `${prefix}.key`, feature.key);
  checkName(out, `${prefix}.name`, feature.name);
  checkDescription(out, `${prefix}.description`, feature.description);
  if (feature.kind === FeatureKind.UNSPECIFIED || !FeatureKind[feature.kind]) {
    out.push({ field: `${prefix}.kind`, description: 'required: boolean, config or metered' });
  }
  if (feature.kind === FeatureKind.METERED) {
    const meter = lookup.meter(feature.meterKey);
    if (!feature.meterKey) out.push({ field: `${prefix}.meter_key`, description: 'required for a metered feature' });
    else if (!meter) out.push({ field: `${prefix}.meter_key`, description: `no meter ${quote(feature.meterKey)}` });
    else if (meter.archived) out.push({ field: `${prefix}.meter_key`, description: 'the meter is archived' });
  } else if (feature.meterKey) {
    out.push({ field: `${prefix}.meter_key`, description: 'only metered features have a meter' });
  }
  return out;
}

/** Validates a new meter. */
export function validateMeter(meter: Meter, prefix = 'meter'): Violations {
  const out: Violations = [];
  checkKey(out, `${prefix}.key`, meter.key);
  checkName(out, `${prefix}.name`, meter.name);
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(meter.eventType)) {
    out.push({ field: `${prefix}.event_type`, description: 'required: 1-128 letters, digits, "_", ".", ":" or "-"' });
  }
  if (meter.aggregation === MeterAggregation.UNSPECIFIED || !MeterAggregation[meter.aggregation]) {
    out.push({ field: `${prefix}.aggregation`, description: 'required: count, sum, max, unique_count or latest' });
  } else if (meter.aggregation === MeterAggregation.COUNT) {
    if (meter.valueProperty) out.push({ field: `${prefix}.value_property`, description: 'a count has no value' });
  } else if (!meter.valueProperty) {
    out.push({ field: `${prefix}.value_property`, description: 'required for this aggregation' });
  }
  meter.filters.forEach((filter, i) => {
    const at = `${prefix}.filters[${i}]`;
    if (!filter.property) out.push({ field: `${at}.property`, description: 'required' });
    if (filter.operator === FilterOperator.UNSPECIFIED || !FilterOperator[filter.operator]) {
      out.push({ field: `${at}.operator`, description: 'required: in, not_in or exists' });
    } else if (filter.operator === FilterOperator.EXISTS) {
      if (filter.values.length > 0) out.push({ field: `${at}.values`, description: 'exists takes no values' });
    } else if (filter.values.length === 0) {
      out.push({ field: `${at}.values`, description: 'at least one value' });
    }
  });
  if (meter.groupBy.length > 5) out.push({ field: `${prefix}.group_by`, description: 'at most 5 dimensions' });
  if (new Set(meter.groupBy).size !== meter.groupBy.length) {
    out.push({ field: `${prefix}.group_by`, description: 'dimensions must be distinct' });
  }
  return out;
}

const USAGE_MODELS = new Set<PriceModel>([
  PriceModel.PER_UNIT,
  PriceModel.PACKAGE,
  PriceModel.TIERED_GRADUATED,
  PriceModel.TIERED_VOLUME,
]);
const TIERED_MODELS = new Set<PriceModel>([PriceModel.TIERED_GRADUATED, PriceModel.TIERED_VOLUME]);

/** Validates the charges of a plan version or add-on in the given currencies. */
function validateCharges(
  out: Violations,
  prefix: string,
  charges: readonly Charge[],
  currencies: readonly string[],
  lookup: CatalogLookup,
): void {
  checkUniqueKeys(
    out,
    prefix,
    charges.map((c) => c.key),
  );
  charges.forEach((charge, i) => {
    const at = `${prefix}[${i}]`;
    checkKey(out, `${at}.key`, charge.key);
    checkName(out, `${at}.name`, charge.name);
    const model = charge.model;
    if (model === PriceModel.UNSPECIFIED || !PriceModel[model]) {
      out.push({ field: `${at}.model`, description: 'required' });
      return;
    }
    if (charge.timing === BillingTiming.UNSPECIFIED || !BillingTiming[charge.timing]) {
      out.push({ field: `${at}.timing`, description: 'required: in_advance or in_arrears' });
    }
    if (USAGE_MODELS.has(model)) {
      const meter = lookup.meter(charge.meterKey);
      if (!charge.meterKey) out.push({ field: `${at}.meter_key`, description: 'required for a usage-based charge' });
      else if (!meter) out.push({ field: `${at}.meter_key`, description: `no meter ${quote(charge.meterKey)}` });
      else if (meter.archived) out.push({ field: `${at}.meter_key`, description: 'the meter is archived' });
      if (charge.timing === BillingTiming.IN_ADVANCE) {
        out.push({ field: `${at}.timing`, description: 'usage is billed in arrears' });
      }
    } else {
      if (charge.meterKey) out.push({ field: `${at}.meter_key`, description: 'only usage-based charges have a meter' });
      if (charge.includedUnits) {
        out.push({ field: `${at}.included_units`, description: 'only usage-based charges include units' });
      }
    }
    checkAmount(out, `${at}.included_units`, charge.includedUnits, { required: false });
    if (model === PriceModel.PACKAGE) {
      checkAmount(out, `${at}.package_size`, charge.packageSize, { required: true, positive: true, integer: true });
    } else if (charge.packageSize) {
      out.push({ field: `${at}.package_size`, description: 'only package charges have a package size' });
    }
    const priced = new Set<string>();
    charge.prices.forEach((price, j) => {
      const pat = `${at}.prices[${j}]`;
      if (!currencies.includes(price.currencyCode)) {
        out.push({
          field: `${pat}.currency_code`,
          description: `${quote(price.currencyCode)} is not a currency of this plan`,
        });
      } else if (priced.has(price.currencyCode)) {
        out.push({ field: `${pat}.currency_code`, description: `a second price in ${quote(price.currencyCode)}` });
      }
      priced.add(price.currencyCode);
      checkAmount(out, `${pat}.minimum_amount`, price.minimumAmount, { required: false });
      if (TIERED_MODELS.has(model)) {
        if (price.unitAmount) out.push({ field: `${pat}.unit_amount`, description: 'tiered prices use tiers' });
        validateTiers(out, `${pat}.tiers`, price.tiers);
      } else {
        checkAmount(out, `${pat}.unit_amount`, price.unitAmount, { required: true });
        if (price.tiers.length > 0) out.push({ field: `${pat}.tiers`, description: 'only tiered models have tiers' });
      }
    });
    for (const currency of currencies) {
      if (!priced.has(currency)) out.push({ field: `${at}.prices`, description: `no price in ${quote(currency)}` });
    }
  });
}

/** Tiers: at least one, ascending and contiguous bounds, the last one unbounded. */
function validateTiers(out: Violations, field: string, tiers: Charge['prices'][number]['tiers']): void {
  if (tiers.length === 0) {
    out.push({ field, description: 'at least one tier' });
    return;
  }
  let previous: ReturnType<typeof parseDecimal> | undefined;
  tiers.forEach((tier, k) => {
    const at = `${field}[${k}]`;
    const last = k === tiers.length - 1;
    checkAmount(out, `${at}.unit_amount`, tier.unitAmount, { required: true });
    checkAmount(out, `${at}.flat_amount`, tier.flatAmount, { required: false });
    if (last) {
      if (tier.upTo) out.push({ field: `${at}.up_to`, description: 'the last tier must be unbounded (empty up_to)' });
      return;
    }
    const upTo = checkAmount(out, `${at}.up_to`, tier.upTo, { required: true, positive: true });
    if (upTo && previous && !upTo.greaterThan(previous)) {
      out.push({ field: `${at}.up_to`, description: 'tiers must be ascending: up_to must exceed the previous tier' });
    }
    if (upTo) previous = upTo;
  });
}

/** Validates entitlements against features and the charges they may bill overage with. */
function validateEntitlements(
  out: Violations,
  prefix: string,
  entitlements: readonly PlanEntitlement[],
  charges: readonly Charge[],
  lookup: CatalogLookup,
): void {
  const seen = new Set<string>();
  entitlements.forEach((entitlement, i) => {
    const at = `${prefix}[${i}]`;
    if (seen.has(entitlement.featureKey)) {
      out.push({
        field: `${at}.feature_key`,
        description: `a second entitlement for ${quote(entitlement.featureKey)}`,
      });
    }
    seen.add(entitlement.featureKey);
    const feature = lookup.feature(entitlement.featureKey);
    if (!feature) {
      out.push({ field: `${at}.feature_key`, description: `no feature ${quote(entitlement.featureKey)}` });
      return;
    }
    if (feature.archived) out.push({ field: `${at}.feature_key`, description: 'the feature is archived' });
    const value = entitlement.value;
    const expected = {
      [FeatureKind.BOOLEAN]: 'enabled',
      [FeatureKind.CONFIG]: 'config',
      [FeatureKind.METERED]: 'metered',
      [FeatureKind.UNSPECIFIED]: 'none',
    }[feature.kind];
    if (value.case !== expected) {
      out.push({ field: `${at}`, description: `feature ${quote(feature.key)} needs a ${expected} entitlement` });
      return;
    }
    if (value.case !== 'metered') return;
    const limit = value.value;
    checkAmount(out, `${at}.metered.limit`, limit.limit, { required: true });
    if (limit.enforcement === LimitEnforcement.UNSPECIFIED || !LimitEnforcement[limit.enforcement]) {
      out.push({ field: `${at}.metered.enforcement`, description: 'required: soft or hard' });
    }
    if (limit.overageAllowed) {
      if (limit.enforcement === LimitEnforcement.HARD) {
        out.push({ field: `${at}.metered.overage_allowed`, description: 'a hard limit allows no overage' });
      }
      if (!charges.some((c) => c.meterKey === feature.meterKey && USAGE_MODELS.has(c.model))) {
        out.push({
          field: `${at}.metered.overage_allowed`,
          description: `overage needs a usage charge on meter ${quote(feature.meterKey)}`,
        });
      }
    }
  });
}

function validateCurrencies(out: Violations, field: string, currencies: readonly string[]): void {
  if (currencies.length === 0) out.push({ field, description: 'at least one currency' });
  currencies.forEach((code, i) => {
    if (!isCurrencyCode(code))
      out.push({ field: `${field}[${i}]`, description: `${quote(code)} is not an ISO 4217 code` });
  });
  if (new Set(currencies).size !== currencies.length) out.push({ field, description: 'currencies must be distinct' });
}

/** Validates the content of a plan version. */
export function validatePlanSpec(spec: PlanVersionSpec, lookup: CatalogLookup, prefix = 'spec'): Violations {
  const out: Violations = [];
  checkName(out, `${prefix}.name`, spec.name);
  checkDescription(out, `${prefix}.description`, spec.description);
  if (spec.interval === BillingInterval.UNSPECIFIED || !BillingInterval[spec.interval]) {
    out.push({ field: `${prefix}.interval`, description: 'required: month, quarter or year' });
  }
  validateCurrencies(out, `${prefix}.currency_codes`, spec.currencyCodes);
  if (!Number.isInteger(spec.trialDays) || spec.trialDays < 0 || spec.trialDays > 730) {
    out.push({ field: `${prefix}.trial_days`, description: 'between 0 and 730' });
  }
  validateCharges(out, `${prefix}.charges`, spec.charges, spec.currencyCodes, lookup);
  validateEntitlements(out, `${prefix}.entitlements`, spec.entitlements, spec.charges, lookup);
  return out;
}

/** Validates an add-on. */
export function validateAddOn(addOn: AddOn, lookup: CatalogLookup, prefix = 'add_on'): Violations {
  const out: Violations = [];
  checkKey(out, `${prefix}.key`, addOn.key);
  checkName(out, `${prefix}.name`, addOn.name);
  checkDescription(out, `${prefix}.description`, addOn.description);
  addOn.planKeys.forEach((key, i) => {
    checkKey(out, `${prefix}.plan_keys[${i}]`, key);
  });
  validateCurrencies(out, `${prefix}.currency_codes`, addOn.currencyCodes);
  validateCharges(out, `${prefix}.charges`, addOn.charges, addOn.currencyCodes, lookup);
  validateEntitlements(out, `${prefix}.entitlements`, addOn.entitlements, addOn.charges, lookup);
  const oneOff = addOn.oneOffPrices.length > 0 || addOn.unitGrant !== undefined;
  if (oneOff) {
    if (addOn.charges.length > 0) {
      out.push({ field: `${prefix}.charges`, description: 'a one-off pack has no recurring charges' });
    }
    const grant = addOn.unitGrant;
    if (!grant) out.push({ field: `${prefix}.unit_grant`, description: 'required for a one-off pack' });
    else {
      const feature = lookup.feature(grant.featureKey);
      if (!feature || feature.kind !== FeatureKind.METERED) {
        out.push({ field: `${prefix}.unit_grant.feature_key`, description: 'must name a metered feature' });
      }
      checkAmount(out, `${prefix}.unit_grant.amount`, grant.amount, { required: true, positive: true });
      if (grant.expiryMonths < 0) out.push({ field: `${prefix}.unit_grant.expiry_months`, description: '0 or more' });
    }
    const priced = new Set(addOn.oneOffPrices.map((p) => p.currencyCode));
    for (const currency of addOn.currencyCodes) {
      if (!priced.has(currency))
        out.push({ field: `${prefix}.one_off_prices`, description: `no price in ${quote(currency)}` });
    }
    addOn.oneOffPrices.forEach((price, i) => {
      checkAmount(out, `${prefix}.one_off_prices[${i}].amount`, price.amount, { required: true });
    });
  }
  return out;
}

/** Which version of a plan a read names: a version number, or the latest published one. */
export interface PlanVersionRef {
  /** The plan's key. */
  planKey: string;
  /** The version, or `latest`. */
  version: number | 'latest';
}

/** The new content of a plan's draft, and the version the caller means to edit (0: the current draft). */
export interface PlanDraftInput {
  /** The plan's key. */
  planKey: string;
  /** The content. */
  spec: PlanVersionSpec;
  /** The draft's version as a guard, or 0 for whichever draft the plan has (or starts). */
  version: number;
}

/** What ApplyCatalog applies: the document read, and how. */
export interface ApplyCatalogInput {
  /** The document. */
  document: CatalogDocument;
  /** Compute and return the changes without making them. */
  dryRun: boolean;
  /** Archive plans, features, meters and add-ons that the document does not name. */
  archiveMissing: boolean;
}

/** A required key of a request (`key`, `plan_key`): empty, it is INVALID_ARGUMENT naming the field. */
export function requiredKey(key: string, field: string): string {
  if (key === '') throw fieldRequired(field);
  return key;
}

/** A required message of a request (`feature`, `spec`): unset, it is INVALID_ARGUMENT naming the field. */
export function requiredMessage<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw fieldRequired(field);
  return value;
}

/** The version a GetPlanVersion request names. */
export function readPlanVersionRef(request: { planKey: string; version: number }): PlanVersionRef {
  const out: Violations = [];
  if (request.planKey === '') out.push({ field: 'plan_key', description: 'required' });
  if (request.version < 0) out.push({ field: 'version', description: '0 (the latest published) or more' });
  refuseViolations(out, 'the request is not valid');
  return { planKey: request.planKey, version: request.version === 0 ? 'latest' : request.version };
}

/** The draft an UpdatePlanDraft request writes. */
export function readPlanDraft(request: { planKey: string; spec?: PlanVersionSpec; version: number }): PlanDraftInput {
  const planKey = requiredKey(request.planKey, 'plan_key');
  return { planKey, spec: requiredMessage(request.spec, 'spec'), version: request.version };
}

const FORMATS = {
  [CatalogFormat.UNSPECIFIED]: 'auto',
  [CatalogFormat.YAML]: 'yaml',
  [CatalogFormat.JSON]: 'json',
} as const;

/** The document an ApplyCatalog request applies, read and checked for form (the catalog checks the rest). */
export function readApplyCatalog(request: {
  document: string;
  format: CatalogFormat;
  dryRun: boolean;
  archiveMissing: boolean;
}): ApplyCatalogInput {
  // A blank document is a mistake, not a catalog of nothing (with archive_missing it would archive everything).
  if (request.document.trim() === '') {
    throw notValid('the catalog document', [{ field: 'document', description: 'required' }]);
  }
  const format = FORMATS[request.format];
  const { document, violations } = readCatalogDocument(request.document, format);
  refuseViolations(violations, 'the catalog document is not valid');
  return { document, dryRun: request.dryRun, archiveMissing: request.archiveMissing };
}
