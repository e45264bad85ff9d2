// MikroORM entities of the usage service: the meter projection, read by key. Its hot reads and guarded save, and
// every other table, are read and written set-wise in SQL (a batch or a pass in one statement): see the
// repositories.

import type { JsonValue } from '@bufbuild/protobuf';
import { defineEntity, p } from '@mikro-orm/core';

/** A meter of the catalog, as its protobuf JSON beside the columns that are queried. */
export const MeterRow = defineEntity({
  name: 'MeterRow',
  tableName: 'meter',
  properties: {
    key: p.string().primary(),
    eventType: p.string(),
    body: p.json<JsonValue>(),
    archived: p.boolean(),
    updatedAt: p.datetime(),
    /** The number, in the meter's catalog sequence, of the event the row was last saved from. */
    catalogSeq: p.bigint('number').nullable(),
  },
});

/** Every entity of the usage service. */
export const USAGE_ENTITIES = [MeterRow];
