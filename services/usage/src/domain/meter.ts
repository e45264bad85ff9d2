// How a meter reads usage events: which events it selects, which value it takes, which group they fall in.
// Pure functions over the catalog's Meter message.

import { Decimal } from '@billing/money';
import { FilterOperator, type Meter, MeterAggregation } from '@billing/proto/billing/catalog/v1/resources_pb';
import type { JsonObject, JsonValue } from '@bufbuild/protobuf';

/**
 * A number as a meter reads it: a safe integer as a plain number (usage is mostly counted in whole units, and
 * adding numbers is far cheaper than adding decimals), anything else as a decimal.
 */
export type Amount = number | Decimal;

/** An amount as decimal text (a safe integer never takes an exponent). */
export const amountText = (amount: Amount): string => (typeof amount === 'number' ? String(amount) : amount.toFixed());

/** A meter's reading of one event: its group and its value (a decimal, or any string for unique counts). */
export interface MeterReading {
  /** The group-by dimension values, in the meter's group_by order, JSON-encoded (`[]` without group_by). */
  group: string;
  /** The numeric value (COUNT: 1; SUM, MAX, LATEST: the value property). */
  value: Amount;
  /** For UNIQUE_COUNT: the distinct value, as a string. */
  distinct?: string;
}

/** A JSON number as PostgreSQL writes it (jsonb keeps numbers as `numeric`, never in exponent form). */
function numberText(value: number): string {
  const text = String(value);
  return text.includes('e') ? new Decimal(text).toFixed() : text;
}

/** Object keys in jsonb's order: shorter (in UTF-8 bytes) first, then byte-wise. */
function jsonbKeyOrder(a: string, b: string): number {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length - bb.length || Buffer.compare(ab, bb);
}

/** A JSON value as PostgreSQL writes jsonb: keys in jsonb's order, ", " and ": " between items. */
function jsonbText(value: JsonValue): string {
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'number') return numberText(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(jsonbText).join(', ')}]`;
  const entries = Object.keys(value)
    .sort(jsonbKeyOrder)
    .map((key) => `${JSON.stringify(key)}: ${jsonbText(value[key] as JsonValue)}`);
  return `{${entries.join(', ')}}`;
}

/**
 * A property's value as text, exactly as PostgreSQL's `properties->>'key'` reads it from the stored event (so
 * the rollups, built here, and the raw events, read in SQL, agree on groups, filters and distinct values).
 * Null and missing are undefined.
 */
export function asText(value: JsonValue | undefined): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  return jsonbText(value);
}

/**
 * Whether the meter selects an event of this type with these properties (type and every filter). Archived
 * meters still count: published plan versions that use them keep billing.
 */
export function meterSelects(meter: Meter, type: string, properties: JsonObject): boolean {
  if (meter.eventType !== type) return false;
  return meter.filters.every((filter) => {
    const value = asText(properties[filter.property]);
    switch (filter.operator) {
      case FilterOperator.EXISTS:
        return value !== undefined;
      case FilterOperator.IN:
        return value !== undefined && filter.values.includes(value);
      case FilterOperator.NOT_IN:
        return value === undefined || !filter.values.includes(value);
      default:
        return false;
    }
  });
}

const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d{1,4})?$/;
/**
 * Usage values are below 10^30 in magnitude and are read to 20 decimals (finer ones rounded half away from zero,
 * as PostgreSQL's round): sums of a billion of them stay exact in 200 digits.
 */
export const MAX_VALUE_MAGNITUDE = new Decimal('1e30');
/** Decimals a usage value is read to. */
export const VALUE_DECIMALS = 20;
/**
 * Longest number held in a string: with an exponent of at most 4 digits, PostgreSQL's `numeric` can read any
 * (at most 16,383 decimals); `"1." + 17,000 zeros` could not be read at all.
 */
export const MAX_NUMBER_LENGTH = 100;

/** `text` without the spaces around it (spaces only, as PostgreSQL's btrim), in linear time. */
function trimSpaces(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && text.charCodeAt(start) === 32) start++;
  while (end > start && text.charCodeAt(end - 1) === 32) end--;
  return text.slice(start, end);
}

/**
 * The meter's reading of a selected event, or an error message when the event cannot be read (its value
 * property is missing or not a number).
 */
export function readEvent(meter: Meter, properties: JsonObject): MeterReading | string {
  const group =
    meter.groupBy.length === 0
      ? '[]'
      : JSON.stringify(meter.groupBy.map((dimension) => asText(properties[dimension]) ?? null));
  if (meter.aggregation === MeterAggregation.COUNT) return { group, value: 1 };
  const raw = properties[meter.valueProperty];
  if (meter.aggregation === MeterAggregation.UNIQUE_COUNT) {
    const distinct = asText(raw);
    if (distinct === undefined) return `property "${meter.valueProperty}" is missing`;
    return { group, value: 1, distinct };
  }
  // Negative zero reads as zero, as its text does.
  if (Number.isSafeInteger(raw)) return { group, value: raw === 0 ? 0 : (raw as number) };
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? trimSpaces(raw) : undefined;
  if (text === undefined || text.length > MAX_NUMBER_LENGTH || !NUMBER.test(text)) {
    return `property "${meter.valueProperty}" is not a number (at most ${MAX_NUMBER_LENGTH} characters)`;
  }
  const value = new Decimal(text).toDecimalPlaces(VALUE_DECIMALS, Decimal.ROUND_HALF_UP);
  if (value.abs().greaterThanOrEqualTo(MAX_VALUE_MAGNITUDE)) {
    return `property "${meter.valueProperty}" is out of range (below 1e30 in magnitude)`;
  }
  return { group, value };
}
