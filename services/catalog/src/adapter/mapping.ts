// Conversions between catalog rows and domain objects (the contract's messages).

import {
  type AddOnSchema,
  type FeatureSchema,
  MeterSchema,
  PlanSchema,
  PlanStatus,
  PlanVersionSchema,
  PlanVersionSpecSchema,
  VersionStatus,
} from '@billing/proto/billing/catalog/v1/resources_pb';
import { create, fromJson, type JsonValue, type MessageShape, toJson } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { AddOn, Feature, Meter, Plan, PlanVersion, PlanVersionSpec } from '../domain/types.ts';

/** Stored values of a version's status. */
export type VersionStatusValue = 'draft' | 'published' | 'superseded' | 'archived';

const VERSION_STATUS: Record<VersionStatusValue, VersionStatus> = {
  draft: VersionStatus.DRAFT,
  published: VersionStatus.PUBLISHED,
  superseded: VersionStatus.SUPERSEDED,
  archived: VersionStatus.ARCHIVED,
};

// Server-owned fields are not part of the stored body: they live in columns.
function body<T extends JsonValue>(json: T): T {
  if (json && typeof json === 'object' && !Array.isArray(json)) {
    const { archived: _a, createTime: _c, updateTime: _u, ...rest } = json as Record<string, JsonValue>;
    return rest as T;
  }
  return json;
}

/** The schemas of documents kept whole in a row (features, add-ons). */
export type DocumentSchema = typeof FeatureSchema | typeof AddOnSchema;

/** A document (feature or add-on) from its row. */
export function fromDbDocument<S extends DocumentSchema>(
  schema: S,
  row: { body: JsonValue; archived: boolean; createdAt: Date; updatedAt: Date },
): MessageShape<S> {
  const document = fromJson(schema, row.body) as Feature | AddOn;
  document.archived = row.archived;
  document.createTime = timestampFromDate(row.createdAt);
  document.updateTime = timestampFromDate(row.updatedAt);
  return document as MessageShape<S>;
}

/** The stored body of a document (feature or add-on). */
export function toDbDocumentBody<S extends DocumentSchema>(schema: S, document: MessageShape<S>): JsonValue {
  return body(toJson(schema, document));
}

/** A meter from its row. */
export function fromDbMeter(row: { body: JsonValue; archived: boolean; createdAt: Date }): Meter {
  const meter = fromJson(MeterSchema, row.body);
  meter.archived = row.archived;
  meter.createTime = timestampFromDate(row.createdAt);
  return meter;
}

/** The stored body of a meter. */
export function toDbMeterBody(meter: Meter): JsonValue {
  return body(toJson(MeterSchema, meter));
}

/** A plan from its row. */
export function fromDbPlan(row: {
  key: string;
  status: string;
  latestVersion: number;
  draftVersion: number;
  createdAt: Date;
  archivedAt?: Date | null;
}): Plan {
  return create(PlanSchema, {
    key: row.key,
    status: row.status === 'archived' ? PlanStatus.ARCHIVED : PlanStatus.ACTIVE,
    latestVersion: row.latestVersion,
    draftVersion: row.draftVersion,
    createTime: timestampFromDate(row.createdAt),
    archiveTime: row.archivedAt ? timestampFromDate(row.archivedAt) : undefined,
  });
}

/** A plan version from its row. */
export function fromDbPlanVersion(row: {
  planKey: string;
  version: number;
  status: string;
  spec: JsonValue;
  publishedAt?: Date | null;
  updatedAt: Date;
}): PlanVersion {
  return create(PlanVersionSchema, {
    planKey: row.planKey,
    version: row.version,
    status: VERSION_STATUS[row.status as VersionStatusValue] ?? VersionStatus.UNSPECIFIED,
    spec: fromDbPlanSpec(row.spec),
    publishTime: row.publishedAt ? timestampFromDate(row.publishedAt) : undefined,
    updateTime: timestampFromDate(row.updatedAt),
  });
}

/** A plan version's content from its stored JSON. */
export function fromDbPlanSpec(json: JsonValue): PlanVersionSpec {
  return fromJson(PlanVersionSpecSchema, json);
}

/** The stored JSON of a plan version's content. */
export function toDbPlanSpec(spec: PlanVersionSpec): JsonValue {
  return toJson(PlanVersionSpecSchema, spec);
}
