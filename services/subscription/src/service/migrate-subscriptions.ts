import type { PlanVersion } from '@billing/proto/billing/catalog/v1/resources_pb';
import {
  ScheduledChangeKind,
  ScheduledChangeSchema,
  SubscriptionState,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { subscriptionChangeScheduled } from '@billing/proto/events/subscription';
import { create } from '@bufbuild/protobuf';
import { savePlanVersion } from '../adapter/plan-versions-repository.ts';
import { liveSubscriptionsOn } from '../adapter/subscriptions-repository.ts';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { invalidArgument } from '../domain/errors.ts';
import { assertAvailable } from '../domain/terms.ts';
import type { MigrateSubscriptionsInput } from '../domain/validate.ts';
import type { WriteContext } from './context.ts';
import { type AnnouncedChange, saveChanges } from './subscription-writes.ts';

/** How many moved subscriptions a migration lists by id. */
const LISTED_IDS = 500;

/** What a migration did, or would do in a dry run. */
export interface Migration {
  /** Subscriptions scheduled to move. */
  migratedCount: number;
  /** Live subscriptions left where they are (a scheduled change already, canceled, or not sold in their currency). */
  skippedCount: number;
  /** The first moved subscriptions' ids. */
  subscriptionIds: string[];
  /** The version they move to. */
  toVersion: number;
  /** Whether nothing was changed. */
  dryRun: boolean;
}

/** Schedules every live subscription on one version to move to `version` (read from the catalog) at its renewal. */
export async function migrateSubscriptions(
  ctx: WriteContext,
  input: MigrateSubscriptionsInput,
  version: PlanVersion,
): Promise<Migration> {
  if (version.version === input.fromVersion) {
    throw invalidArgument('the versions are the same', [
      { field: 'to_version', description: 'must differ from from_version' },
    ]);
  }
  assertAvailable(version);
  const records = await liveSubscriptionsOn(ctx.em, input.to.planKey, input.fromVersion);
  if (!input.dryRun) await savePlanVersion(ctx.em, version);
  const moved: string[] = [];
  const changes: AnnouncedChange<typeof subscriptionChangeScheduled.schema>[] = [];
  let skipped = 0;
  for (const record of records) {
    const s = record.subscription;
    const sellable = version.spec?.currencyCodes.includes(s.currencyCode) ?? false;
    if (s.scheduledChange || s.state === SubscriptionState.CANCELED || !sellable) {
      skipped += 1;
      continue;
    }
    moved.push(s.id);
    if (input.dryRun) continue;
    const now = await clockTime(ctx.em, record.testClockId, ctx.now);
    s.scheduledChange = create(ScheduledChangeSchema, {
      kind: ScheduledChangeKind.MIGRATION,
      applyTime: s.state === SubscriptionState.PENDING ? s.startTime : s.currentPeriod?.endTime,
      planKey: input.to.planKey,
      planVersion: version.version,
    });
    changes.push({ record, at: now, payload: { subscription: s } });
  }
  await saveChanges(ctx, changes, subscriptionChangeScheduled);
  return {
    migratedCount: moved.length,
    skippedCount: skipped,
    subscriptionIds: moved.slice(0, LISTED_IDS),
    toVersion: version.version,
    dryRun: input.dryRun,
  };
}
