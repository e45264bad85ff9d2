// The declarative catalog document a company keeps in its repository (YAML or JSON), read into the
// contract's messages. Reading is strict: unknown keys and wrong types are reported with their path, so a
// typo never silently drops a price. The format is described in docs/catalog.md.

import { type FieldViolation, quote } from '@billing/kit/errors';
import { isStorableText } from '@billing/kit/text';
import {
  AddOnSchema,
  BillingTiming,
  ChargePriceSchema,
  ChargeSchema,
  FeatureKind,
  FeatureSchema,
  FilterOperator,
  LimitEnforcement,
  MeterAggregation,
  MeterSchema,
  PlanEntitlementSchema,
  PlanVersionSpecSchema,
  PriceModel,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import { BillingInterval } from '@billing/proto/billing/type/v1/types_pb';
import { create, type JsonObject, type JsonValue } from '@bufbuild/protobuf';
import { parse as parseYaml } from 'yaml';
import type { AddOn, Charge, Feature, Meter, PlanEntitlement, PlanVersionSpec } from './types.ts';

/** A catalog document, read. */
export interface CatalogDocument {
  /** Meters, in document order. */
  meters: Meter[];
  /** Features, in document order. */
  features: Feature[];
  /** Plans: key and the content their latest version should have. */
  plans: { key: string; spec: PlanVersionSpec }[];
  /** Add-ons. */
  addOns: AddOn[];
}

/** Largest document accepted, in characters. */
export const MAX_DOCUMENT_LENGTH = 1_000_000;

const ENUMS = {
  kind: { boolean: FeatureKind.BOOLEAN, config: FeatureKind.CONFIG, metered: FeatureKind.METERED },
  aggregation: {
    count: MeterAggregation.COUNT,
    sum: MeterAggregation.SUM,
    max: MeterAggregation.MAX,
    unique_count: MeterAggregation.UNIQUE_COUNT,
    latest: MeterAggregation.LATEST,
  },
  operator: { in: FilterOperator.IN, not_in: FilterOperator.NOT_IN, exists: FilterOperator.EXISTS },
  interval: { month: BillingInterval.MONTH, quarter: BillingInterval.QUARTER, year: BillingInterval.YEAR },
  model: {
    flat: PriceModel.FLAT,
    per_unit: PriceModel.PER_UNIT,
    per_seat: PriceModel.PER_SEAT,
    package: PriceModel.PACKAGE,
    tiered_graduated: PriceModel.TIERED_GRADUATED,
    tiered_volume: PriceModel.TIERED_VOLUME,
  },
  timing: { in_advance: BillingTiming.IN_ADVANCE, in_arrears: BillingTiming.IN_ARREARS },
  enforcement: { soft: LimitEnforcement.SOFT, hard: LimitEnforcement.HARD },
} as const;

/**
 * The path of `key` within the object at `path` ('' for the document itself). A key that is not a plain name
 * (one the document made up: an unknown key, a currency) is quoted, as a prefix when long.
 */
function childPath(path: string, key: string): string {
  if (!/^[A-Za-z0-9_]{1,64}$/.test(key)) return `${path}[${quote(key)}]`;
  return path ? `${path}.${key}` : key;
}

/**
 * Records every key and string of `value` that PostgreSQL cannot store, by its document path. It walks with a
 * list of its own, as deep as the document goes, and looks at each object once: a YAML alias makes one object
 * appear in several places, or inside itself.
 */
function refuseUnstorableText(out: FieldViolation[], value: JsonValue): void {
  const description = 'must not hold a NUL character or an unpaired surrogate';
  const seen = new WeakSet<object>();
  const pending: [JsonValue, string][] = [[value, '']];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [item, path] = next;
    if (typeof item === 'string') {
      if (!isStorableText(item)) out.push({ field: path, description });
    } else if (item !== null && typeof item === 'object' && !seen.has(item)) {
      seen.add(item);
      if (Array.isArray(item)) {
        for (const [i, element] of item.entries()) pending.push([element, `${path}[${i}]`]);
      } else {
        for (const [key, element] of Object.entries(item)) {
          const at = childPath(path, key);
          if (isStorableText(key)) pending.push([element, at]);
          else out.push({ field: at, description });
        }
      }
    }
  }
}

/** A reader of one object of the document that records violations instead of throwing. */
class Reader {
  readonly #out: FieldViolation[];
  readonly #object: JsonObject;
  readonly #path: string;

  constructor(out: FieldViolation[], value: JsonValue | undefined, path: string, allowed: readonly string[]) {
    this.#out = out;
    this.#path = path;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      out.push({ field: path, description: 'must be an object' });
      this.#object = {};
      return;
    }
    this.#object = value;
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) out.push({ field: childPath(path, key), description: 'unknown key' });
    }
  }

  #at(key: string): string {
    return childPath(this.#path, key);
  }

  has(key: string): boolean {
    return this.#object[key] !== undefined && this.#object[key] !== null;
  }

  raw(key: string): JsonValue | undefined {
    return this.#object[key] ?? undefined;
  }

  string(key: string, required = false): string {
    const value = this.#object[key];
    if (value === undefined || value === null) {
      if (required) this.#out.push({ field: this.#at(key), description: 'required' });
      return '';
    }
    if (typeof value !== 'string') {
      this.#out.push({ field: this.#at(key), description: 'must be a string' });
      return '';
    }
    return value;
  }

  /** A decimal given as a string or a plain number (quoting is safer: see docs/catalog.md). */
  decimal(key: string, required = false): string {
    const value = this.#object[key];
    if (typeof value === 'number') return String(value);
    return this.string(key, required);
  }

  integer(key: string): number {
    const value = this.#object[key];
    if (value === undefined || value === null) return 0;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      this.#out.push({ field: this.#at(key), description: 'must be a whole number' });
      return 0;
    }
    return value;
  }

  boolean(key: string): boolean {
    const value = this.#object[key];
    if (value === undefined || value === null) return false;
    if (typeof value !== 'boolean') {
      this.#out.push({ field: this.#at(key), description: 'must be true or false' });
      return false;
    }
    return value;
  }

  strings(key: string): string[] {
    const value = this.#object[key];
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
      this.#out.push({ field: this.#at(key), description: 'must be a list of strings' });
      return [];
    }
    return value as string[];
  }

  choice(key: string, kind: keyof typeof ENUMS): number {
    const name = this.string(key, true);
    if (!name) return 0;
    const table: Record<string, number> = ENUMS[kind];
    const value = table[name];
    if (value === undefined) {
      this.#out.push({ field: this.#at(key), description: `must be one of ${Object.keys(table).join(', ')}` });
      return 0;
    }
    return value;
  }

  list<T>(key: string, read: (value: JsonValue, path: string) => T): T[] {
    const value = this.#object[key];
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.#out.push({ field: this.#at(key), description: 'must be a list' });
      return [];
    }
    return value.map((item, i) => read(item, `${this.#at(key)}[${i}]`));
  }

  object(key: string): JsonObject | undefined {
    const value = this.#object[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.#out.push({ field: this.#at(key), description: 'must be an object' });
      return undefined;
    }
    return value;
  }
}

function readMeter(out: FieldViolation[], value: JsonValue, path: string): Meter {
  const r = new Reader(out, value, path, [
    'key',
    'name',
    'event_type',
    'aggregation',
    'value_property',
    'filters',
    'group_by',
  ]);
  return create(MeterSchema, {
    key: r.string('key', true),
    name: r.string('name', true),
    eventType: r.string('event_type', true),
    aggregation: r.choice('aggregation', 'aggregation'),
    valueProperty: r.string('value_property'),
    filters: r.list('filters', (item, at) => {
      const f = new Reader(out, item, at, ['property', 'operator', 'values']);
      return {
        property: f.string('property', true),
        operator: f.choice('operator', 'operator'),
        values: f.strings('values'),
      };
    }),
    groupBy: r.strings('group_by'),
  });
}

function readFeature(out: FieldViolation[], value: JsonValue, path: string): Feature {
  const r = new Reader(out, value, path, ['key', 'name', 'description', 'kind', 'meter']);
  return create(FeatureSchema, {
    key: r.string('key', true),
    name: r.string('name', true),
    description: r.string('description'),
    kind: r.choice('kind', 'kind'),
    meterKey: r.string('meter'),
  });
}

/** Prices: `{ USD: "15.00", EUR: { unit_amount: "14", minimum: "5" }, ... }` keyed by currency. */
function readPrices(out: FieldViolation[], r: Reader, path: string): Charge['prices'] {
  const prices = r.object('prices');
  if (!prices) return [];
  return Object.entries(prices).map(([currencyCode, price]) => {
    const at = childPath(childPath(path, 'prices'), currencyCode);
    if (typeof price === 'string' || typeof price === 'number') {
      return create(ChargePriceSchema, { currencyCode, unitAmount: String(price) });
    }
    const p = new Reader(out, price, at, ['unit_amount', 'tiers', 'minimum']);
    return create(ChargePriceSchema, {
      currencyCode,
      unitAmount: p.decimal('unit_amount'),
      minimumAmount: p.decimal('minimum'),
      tiers: p.list('tiers', (item, tierPath) => {
        const t = new Reader(out, item, tierPath, ['up_to', 'unit_amount', 'flat_amount']);
        return {
          upTo: t.decimal('up_to'),
          unitAmount: t.decimal('unit_amount', true),
          flatAmount: t.decimal('flat_amount'),
        };
      }),
    });
  });
}

function readCharge(out: FieldViolation[], value: JsonValue, path: string): Charge {
  const r = new Reader(out, value, path, [
    'key',
    'name',
    'model',
    'timing',
    'meter',
    'included_units',
    'package_size',
    'prices',
  ]);
  return create(ChargeSchema, {
    key: r.string('key', true),
    name: r.string('name', true),
    model: r.choice('model', 'model'),
    timing: r.choice('timing', 'timing'),
    meterKey: r.string('meter'),
    includedUnits: r.decimal('included_units'),
    packageSize: r.decimal('package_size'),
    prices: readPrices(out, r, path),
  });
}

/** Entitlements: `{feature, enabled}` or `{feature, config}` or `{feature, limit, enforcement, overage}`. */
function readEntitlement(out: FieldViolation[], value: JsonValue, path: string): PlanEntitlement {
  const r = new Reader(out, value, path, ['feature', 'enabled', 'config', 'limit', 'enforcement', 'overage']);
  const featureKey = r.string('feature', true);
  if (r.has('limit')) {
    return create(PlanEntitlementSchema, {
      featureKey,
      value: {
        case: 'metered',
        value: {
          limit: r.decimal('limit', true),
          enforcement: r.choice('enforcement', 'enforcement'),
          overageAllowed: r.boolean('overage'),
        },
      },
    });
  }
  if (r.has('config')) {
    return create(PlanEntitlementSchema, { featureKey, value: { case: 'config', value: r.object('config') ?? {} } });
  }
  if (!r.has('enabled')) out.push({ field: path, description: 'needs one of enabled, config or limit' });
  return create(PlanEntitlementSchema, { featureKey, value: { case: 'enabled', value: r.boolean('enabled') } });
}

function readPlan(out: FieldViolation[], value: JsonValue, path: string): { key: string; spec: PlanVersionSpec } {
  const r = new Reader(out, value, path, [
    'key',
    'name',
    'description',
    'interval',
    'currencies',
    'trial_days',
    'charges',
    'entitlements',
  ]);
  return {
    key: r.string('key', true),
    spec: create(PlanVersionSpecSchema, {
      name: r.string('name', true),
      description: r.string('description'),
      interval: r.choice('interval', 'interval'),
      currencyCodes: r.strings('currencies'),
      trialDays: r.integer('trial_days'),
      charges: r.list('charges', (item, at) => readCharge(out, item, at)),
      entitlements: r.list('entitlements', (item, at) => readEntitlement(out, item, at)),
    }),
  };
}

function readAddOn(out: FieldViolation[], value: JsonValue, path: string): AddOn {
  const r = new Reader(out, value, path, [
    'key',
    'name',
    'description',
    'plans',
    'currencies',
    'charges',
    'entitlements',
    'price',
    'grant',
  ]);
  const price = r.object('price') ?? {};
  const grant = r.object('grant');
  const g = grant
    ? new Reader(out, grant, `${path}.grant`, ['feature', 'amount', 'expiry_months', 'priority'])
    : undefined;
  return create(AddOnSchema, {
    key: r.string('key', true),
    name: r.string('name', true),
    description: r.string('description'),
    planKeys: r.strings('plans'),
    currencyCodes: r.strings('currencies'),
    charges: r.list('charges', (item, at) => readCharge(out, item, at)),
    entitlements: r.list('entitlements', (item, at) => readEntitlement(out, item, at)),
    oneOffPrices: Object.entries(price).map(([currencyCode, amount]) => ({
      currencyCode,
      amount: typeof amount === 'number' ? String(amount) : typeof amount === 'string' ? amount : '',
    })),
    unitGrant: g && {
      featureKey: g.string('feature', true),
      amount: g.decimal('amount', true),
      expiryMonths: g.integer('expiry_months'),
      priority: g.integer('priority'),
    },
  });
}

/** Reads a catalog document; returns it with every violation found (empty when it is well-formed). */
export function readCatalogDocument(
  text: string,
  format: 'yaml' | 'json' | 'auto',
): { document: CatalogDocument; violations: FieldViolation[] } {
  const out: FieldViolation[] = [];
  const empty: CatalogDocument = { meters: [], features: [], plans: [], addOns: [] };
  if (text.length > MAX_DOCUMENT_LENGTH) {
    return { document: empty, violations: [{ field: 'document', description: 'larger than 1,000,000 characters' }] };
  }
  const json = format === 'json' || (format === 'auto' && text.trimStart().startsWith('{'));
  let value: JsonValue;
  try {
    value = (json ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 100 })) as JsonValue;
  } catch (err) {
    // YAML errors end with an excerpt of the document around the error (lines cut to 80 characters).
    const reason = err instanceof Error ? err.message.trimEnd() : 'unreadable';
    return {
      document: empty,
      violations: [{ field: 'document', description: `not valid ${json ? 'JSON' : 'YAML'}: ${reason}` }],
    };
  }
  const r = new Reader(out, value ?? {}, '', ['meters', 'features', 'plans', 'add_ons']);
  const document: CatalogDocument = {
    meters: r.list('meters', (item, at) => readMeter(out, item, at)),
    features: r.list('features', (item, at) => readFeature(out, item, at)),
    plans: r.list('plans', (item, at) => readPlan(out, item, at)),
    addOns: r.list('add_ons', (item, at) => readAddOn(out, item, at)),
  };
  // The kit's request guard sees the document as one string; JSON and YAML escapes ("\u0000", "\0") can turn it
  // into text PostgreSQL cannot store, so every key and string read from it is held to the same rule.
  refuseUnstorableText(out, value);
  return {
    document,
    violations: out.map((v) => ({
      ...v,
      field: v.field === '' || v.field.startsWith('[') ? `document${v.field}` : `document.${v.field}`,
    })),
  };
}
