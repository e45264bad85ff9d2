import { refuseViolations } from '@billing/kit/errors';
import { type ProrationItem, ProrationReason } from '@billing/proto/billing/subscription/v1/resources_pb';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { invalidArgument } from '../domain/errors.ts';
import { changedTerms } from '../domain/term-changes.ts';
import { assertSellable, fromPeriod } from '../domain/terms.ts';
import { addOnsToRead, type PreviewChangeInput, quantityViolations, requireCharges } from '../domain/validate.ts';
import type { ReadContext } from './context.ts';
import { requireSubscription } from './lookups.ts';
import { type PlanCatalog, readAddOns } from './plan-catalog.ts';
import { changeItems, quantityChange } from './prorated-changes.ts';

/**
 * The proration items an immediate change would create, without ids and without making it. A read: it asks the
 * catalog for what the change names (the plan of a plan change defaults to the subscription's own) and writes
 * nothing.
 */
export async function previewChange(
  ctx: ReadContext,
  catalog: PlanCatalog,
  input: PreviewChangeInput,
): Promise<ProrationItem[]> {
  const record = await requireSubscription(ctx.em, input.subscriptionId);
  const s = record.subscription;
  const at = input.effectiveTime ?? (await clockTime(ctx.em, record.testClockId, ctx.now));
  if (s.currentPeriod) {
    const period = fromPeriod(s.currentPeriod);
    if (at.getTime() < period.start.getTime() || at.getTime() > period.end.getTime()) {
      throw invalidArgument('the effective time is outside the current period', [
        { field: 'effective_time', description: 'must fall within the current period' },
      ]);
    }
  }
  const change = input.change;
  if (change.kind === 'plan') {
    const version = await catalog.planVersion({ ...change.plan, planKey: change.plan.planKey || s.planKey });
    requireCharges(version, 'quantities', change.quantities);
    refuseViolations(quantityViolations(change.quantities, version, 'quantities'), 'the change is not valid');
    assertSellable(version, s.currencyCode);
    const terms = changedTerms(record, version, { quantities: change.quantities, priceOverrides: [] });
    const after = { terms, version, addonCharges: record.addonCharges };
    return changeItems(ctx.em, record, after, at, ProrationReason.PLAN_CHANGE, true);
  }
  const addOns = await readAddOns(catalog, addOnsToRead(change.addons));
  const after = await quantityChange(ctx.em, record, change, addOns);
  return changeItems(ctx.em, record, after, at, ProrationReason.QUANTITY_CHANGE, true);
}
