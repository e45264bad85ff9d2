// The SubscriptionService handlers: validate the request, call the use case, convert the result. A change that
// needs the catalog reads it before its transaction opens (service/plan-catalog.ts), so no database
// transaction waits on the catalog.
import { mutate } from '@billing/kit/mutation';
import type { ServiceContext } from '@billing/kit/service-context';
import { SubscriptionService } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import type { ServiceImpl } from '@connectrpc/connect';
import {
  addOnsToRead,
  validateAdvanceTestClock,
  validateCancelSubscription,
  validateChangePlan,
  validateChangeQuantity,
  validateCreateSubscription,
  validateCreateTestClock,
  validateId,
  validateListProrationItems,
  validateListSubscriptions,
  validateListTestClocks,
  validateMigrateSubscriptions,
  validatePreviewChange,
} from '../domain/validate.ts';
import { advanceTestClock } from '../service/advance-test-clock.ts';
import { cancelScheduledChange } from '../service/cancel-scheduled-change.ts';
import { cancelSubscription } from '../service/cancel-subscription.ts';
import { changePlan } from '../service/change-plan.ts';
import { changeQuantity } from '../service/change-quantity.ts';
import { createSubscription } from '../service/create-subscription.ts';
import { createTestClock } from '../service/create-test-clock.ts';
import { deleteTestClock } from '../service/delete-test-clock.ts';
import { getSubscription } from '../service/get-subscription.ts';
import { getTestClock } from '../service/get-test-clock.ts';
import { listProrationItems } from '../service/list-proration-items.ts';
import { listSubscriptions } from '../service/list-subscriptions.ts';
import { listTestClocks } from '../service/list-test-clocks.ts';
import { migrateSubscriptions } from '../service/migrate-subscriptions.ts';
import { type PlanCatalog, readAddOns, readPlanTerms } from '../service/plan-catalog.ts';
import { previewChange } from '../service/preview-change.ts';
import { resumeSubscription } from '../service/resume-subscription.ts';
import type { TestClockPolicy } from '../service/test-clock-policy.ts';
import { toProtoSubscription, toProtoSubscriptionChange } from './convert.ts';

const M = SubscriptionService.method;

/** Builds the SubscriptionService implementation over a service context, the catalog and the clock policy. */
export function subscriptionHandlers(
  context: ServiceContext,
  catalog: PlanCatalog,
  testClocks: TestClockPolicy,
): ServiceImpl<typeof SubscriptionService> {
  const read = () => ({ em: context.db.fork(), now: context.clock.now() });
  return {
    async createSubscription(req) {
      const input = validateCreateSubscription(req);
      const plan = await readPlanTerms(catalog, input.plan, addOnsToRead(input.addons));
      return mutate(context, M.createSubscription, req, async (s) =>
        toProtoSubscriptionChange(await createSubscription(s, input, plan)),
      );
    },

    async getSubscription(req) {
      return { subscription: toProtoSubscription(await getSubscription(read(), validateId(req.id, 'id'))) };
    },

    async listSubscriptions(req) {
      const page = await listSubscriptions(read(), validateListSubscriptions(req));
      return { subscriptions: page.items.map(toProtoSubscription), nextPageToken: page.nextPageToken };
    },

    async changePlan(req) {
      const input = validateChangePlan(req);
      const version = await catalog.planVersion(input.plan);
      return mutate(context, M.changePlan, req, async (s) =>
        toProtoSubscriptionChange(await changePlan(s, input, version)),
      );
    },

    async changeQuantity(req) {
      const input = validateChangeQuantity(req);
      const addOns = await readAddOns(catalog, addOnsToRead(input.addons));
      return mutate(context, M.changeQuantity, req, async (s) =>
        toProtoSubscriptionChange(await changeQuantity(s, input, addOns)),
      );
    },

    async cancelSubscription(req) {
      const input = validateCancelSubscription(req);
      return mutate(context, M.cancelSubscription, req, async (s) =>
        toProtoSubscriptionChange(await cancelSubscription(s, input)),
      );
    },

    async resumeSubscription(req) {
      const id = validateId(req.subscriptionId, 'subscription_id');
      return mutate(context, M.resumeSubscription, req, async (s) => ({
        subscription: toProtoSubscription(await resumeSubscription(s, id)),
      }));
    },

    async cancelScheduledChange(req) {
      const id = validateId(req.subscriptionId, 'subscription_id');
      return mutate(context, M.cancelScheduledChange, req, async (s) => ({
        subscription: toProtoSubscription(await cancelScheduledChange(s, id)),
      }));
    },

    async migrateSubscriptions(req) {
      const input = validateMigrateSubscriptions(req);
      const version = await catalog.planVersion(input.to);
      return mutate(context, M.migrateSubscriptions, req, (s) => migrateSubscriptions(s, input, version));
    },

    async previewChange(req) {
      return { prorationItems: await previewChange(read(), catalog, validatePreviewChange(req)) };
    },

    async listProrationItems(req) {
      const page = await listProrationItems(read(), validateListProrationItems(req));
      return { prorationItems: page.items, nextPageToken: page.nextPageToken };
    },

    async createTestClock(req) {
      const input = validateCreateTestClock(req);
      return mutate(context, M.createTestClock, req, async (s) => ({
        testClock: await createTestClock(s, testClocks, input),
      }));
    },

    async getTestClock(req) {
      return { testClock: await getTestClock(read(), validateId(req.id, 'id')) };
    },

    async listTestClocks(req) {
      const page = await listTestClocks(read(), validateListTestClocks(req));
      return { testClocks: page.items, nextPageToken: page.nextPageToken };
    },

    async advanceTestClock(req) {
      const input = validateAdvanceTestClock(req);
      return mutate(context, M.advanceTestClock, req, async (s) => ({
        testClock: await advanceTestClock(s, testClocks, input),
      }));
    },

    async deleteTestClock(req) {
      const id = validateId(req.id, 'id');
      return mutate(context, M.deleteTestClock, req, async (s) => {
        await deleteTestClock(s, id);
        return {};
      });
    },
  };
}
