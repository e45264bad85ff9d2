// MikroORM entities of the catalog. Features, meters, add-ons and plan version contents are kept as their
// protobuf JSON (`body`/`spec`) beside the columns that are queried or locked; mapping.ts converts.

import type { JsonValue } from '@bufbuild/protobuf';
import { defineEntity, p } from '@mikro-orm/core';

/** A table of documents (features, add-ons): key, protobuf JSON body, archived flag, times. */
function documentEntity(name: string, tableName: string) {
  return defineEntity({
    name,
    tableName,
    properties: {
      key: p.string().primary(),
      body: p.json<JsonValue>(),
      archived: p.boolean(),
      createdAt: p.datetime(),
      updatedAt: p.datetime(),
    },
  });
}

/** The entity type shared by document tables. */
export type DocumentEntity = ReturnType<typeof documentEntity>;

/** A feature row. */
export const FeatureRow = documentEntity('FeatureRow', 'feature');

/** An add-on row. */
export const AddOnRow = documentEntity('AddOnRow', 'add_on');

/** A meter row. */
export const MeterRow = defineEntity({
  name: 'MeterRow',
  tableName: 'meter',
  properties: {
    key: p.string().primary(),
    body: p.json<JsonValue>(),
    archived: p.boolean(),
    createdAt: p.datetime(),
  },
});

/** A plan row: the plan as a whole and its version pointers. */
export const PlanRow = defineEntity({
  name: 'PlanRow',
  tableName: 'plan',
  properties: {
    key: p.string().primary(),
    status: p.string(),
    latestVersion: p.integer(),
    draftVersion: p.integer(),
    createdAt: p.datetime(),
    archivedAt: p.datetime().nullable(),
  },
});

/** One version of a plan; published rows are never updated except their status. */
export const PlanVersionRow = defineEntity({
  name: 'PlanVersionRow',
  tableName: 'plan_version',
  properties: {
    planKey: p.string().primary(),
    version: p.integer().primary(),
    status: p.string(),
    spec: p.json<JsonValue>(),
    publishedAt: p.datetime().nullable(),
    updatedAt: p.datetime(),
  },
  primaryKeys: ['planKey', 'version'],
});

/** Every entity of the catalog. */
export const CATALOG_ENTITIES = [FeatureRow, MeterRow, PlanRow, PlanVersionRow, AddOnRow];
