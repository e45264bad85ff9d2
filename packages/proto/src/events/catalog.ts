// The events the catalog publishes (subjects per docs/events.md).

import {
  AddOnArchivedSchema,
  AddOnUpdatedSchema,
  FeatureArchivedSchema,
  FeatureUpdatedSchema,
  MeterArchivedSchema,
  MeterCreatedSchema,
  PlanArchivedSchema,
  PlanPublishedSchema,
} from '../../gen/billing/catalog/events/v1/events_pb.js';
import { defineEvent } from './define.ts';

/** A feature was created or changed. */
export const featureUpdated = defineEvent('billing.catalog.feature.updated', FeatureUpdatedSchema);
/** A feature was archived. */
export const featureArchived = defineEvent('billing.catalog.feature.archived', FeatureArchivedSchema);
/** A meter was created. */
export const meterCreated = defineEvent('billing.catalog.meter.created', MeterCreatedSchema);
/** A meter was archived. */
export const meterArchived = defineEvent('billing.catalog.meter.archived', MeterArchivedSchema);
/** A plan version was published. */
export const planPublished = defineEvent('billing.catalog.plan.published', PlanPublishedSchema);
/** A plan was archived. */
export const planArchived = defineEvent('billing.catalog.plan.archived', PlanArchivedSchema);
/** An add-on was created or changed. */
export const addOnUpdated = defineEvent('billing.catalog.addon.updated', AddOnUpdatedSchema);
/** An add-on was archived. */
export const addOnArchived = defineEvent('billing.catalog.addon.archived', AddOnArchivedSchema);
