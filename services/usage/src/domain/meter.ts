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

function asText(value: JsonValue | undefined): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
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

const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?$/;

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
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : undefined;
  if (text === undefined || !NUMBER.test(text)) return `property "${meter.valueProperty}" is not a number`;
  return { group, value: new Decimal(text) };
}
