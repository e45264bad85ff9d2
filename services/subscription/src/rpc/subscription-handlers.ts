// The SubscriptionService handlers: read what the catalog must say before the transaction, then convert the
// request, call the use case, convert the result.
import { InvalidArgumentError } from '@billing/kit/errors';
import { mutate } from '@billing/kit/mutation';
import { listPage } from '@billing/kit/pagination';
import type { ServiceContext } from '@billing/kit/runtime';
import type { AddOn } from '@billing/proto/billing/catalog/v1/resources_pb';
import { SubscriptionService } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import type { ServiceImpl } from '@connectrpc/connect';
import type { PlanCatalog } from '../adapter/catalog-client.ts';
import * as store from '../adapter/store.ts';
import {
  type CatalogData,
  cancelScheduledChange,
  cancelSubscription,
  changePlan,
  changeQuantity,
  createSubscription,
  migrateSubscriptions,
  previewChange,
  requireSubscription,
  resumeSubscription,
} from '../service/subscriptions.ts';
import {
  advanceTestClock,
  createTestClock,
  deleteTestClock,
  requireTestClock,
  type TestClockPolicy,
} from '../service/test-clocks.ts';

const M = SubscriptionService.method;

function requiredKey(value: string, field: string): string {
  if (value === '') throw new InvalidArgumentError(`${field} is required`, [{ field, description: 'required' }]);
  return value;
}

/** Builds the SubscriptionService implementation over a service context, the catalog and the clock policy. */
export function subscriptionHandlers(
  context: ServiceContext,
  catalog: PlanCatalog,
  testClocks: TestClockPolicy,
): ServiceImpl<typeof SubscriptionService> {
  const read = () => ({ em: context.db.fork(), now: context.clock.now(), requestId: '' });

  async function catalogData(
    plan: { planKey: string; version: number } | undefined,
    addons: readonly { addonKey: string; quantity: string }[],
  ): Promise<CatalogData> {
    const version = plan ? await catalog.planVersion(requiredKey(plan.planKey, 'plan_key'), plan.version) : undefined;
    const addOns = new Map<string, AddOn>();
    for (const a of addons) {
      if (a.addonKey !== '' && a.quantity !== '0' && !addOns.has(a.addonKey)) {
        addOns.set(a.addonKey, await catalog.addOn(a.addonKey));
      }
    }
    return { version, addOns };
  }

  const checkVersion = (version: number, field: string) => {
    if (!Number.isInteger(version) || version < 0) {
      throw new InvalidArgumentError(`${field} is not valid`, [{ field, description: '0 (latest) or a version' }]);
    }
  };

  return {
    async createSubscription(req) {
      requiredKey(req.customerId, 'customer_id');
      checkVersion(req.planVersion, 'plan_version');
      const data = await catalogData({ planKey: req.planKey, version: req.planVersion }, req.addons);
      return mutate(context, M.createSubscription, req, (s) => createSubscription(s, req, data));
    },

    async getSubscription(req) {
      return { subscription: (await requireSubscription(read(), req.id)).subscription };
    },

    async listSubscriptions(req) {
      const filters = {
        customerId: req.customerId,
        payerId: req.payerId,
        planKey: req.planKey,
        planVersion: req.planVersion,
        states: req.states,
        scheduledChangeOnly: req.scheduledChangeOnly,
      };
      const { items, nextPageToken } = await listPage(
        req,
        filters,
        (page) => store.listSubscriptions(read().em, filters, page),
        (row) => row.seq,
      );
      return { subscriptions: items.map((row) => row.record.subscription), nextPageToken };
    },

    async changePlan(req) {
      checkVersion(req.planVersion, 'plan_version');
      const data = await catalogData({ planKey: req.planKey, version: req.planVersion }, []);
      return mutate(context, M.changePlan, req, (s) => changePlan(s, req, data));
    },

    async changeQuantity(req) {
      const data = await catalogData(undefined, req.addons);
      return mutate(context, M.changeQuantity, req, (s) => changeQuantity(s, req, data));
    },

    cancelSubscription: (req) =>
      mutate(context, M.cancelSubscription, req, (s) =>
        cancelSubscription(s, req.subscriptionId, req.mode, req.reason),
      ),

    resumeSubscription: (req) =>
      mutate(context, M.resumeSubscription, req, async (s) => ({
        subscription: await resumeSubscription(s, req.subscriptionId),
      })),

    cancelScheduledChange: (req) =>
      mutate(context, M.cancelScheduledChange, req, async (s) => ({
        subscription: await cancelScheduledChange(s, req.subscriptionId),
      })),

    async migrateSubscriptions(req) {
      checkVersion(req.toVersion, 'to_version');
      const data = await catalogData({ planKey: req.planKey, version: req.toVersion }, []);
      return mutate(context, M.migrateSubscriptions, req, (s) => migrateSubscriptions(s, req, data));
    },

    async previewChange(req) {
      checkVersion(req.planVersion, 'plan_version');
      const changesPlan = req.planKey !== '' || req.planVersion !== 0;
      const current =
        changesPlan && req.planKey === '' ? await requireSubscription(read(), req.subscriptionId) : undefined;
      const planKey = current ? current.subscription.planKey : req.planKey;
      const data = await catalogData(changesPlan ? { planKey, version: req.planVersion } : undefined, req.addons);
      const items = await context.db.transaction((em) =>
        previewChange({ em, now: context.clock.now(), requestId: '' }, { ...req, planKey }, data),
      );
      return { prorationItems: items };
    },

    async listProrationItems(req) {
      const { items, nextPageToken } = await listPage(
        req,
        { subscriptionId: req.subscriptionId },
        (page) => store.listProrationItems(read().em, req.subscriptionId, page),
        (row) => row.seq,
      );
      return { prorationItems: items.map((row) => row.item), nextPageToken };
    },

    createTestClock: (req) =>
      mutate(context, M.createTestClock, req, async (s) => ({
        testClock: await createTestClock(s, testClocks, req.name, req.frozenTime),
      })),

    async getTestClock(req) {
      return { testClock: await requireTestClock(read(), req.id) };
    },

    async listTestClocks(req) {
      const { items, nextPageToken } = await listPage(
        req,
        {},
        (page) => store.listTestClocks(read().em, page),
        (row) => row.seq,
      );
      return { testClocks: items.map((row) => row.clock), nextPageToken };
    },

    advanceTestClock: (req) =>
      mutate(context, M.advanceTestClock, req, async (s) => ({
        testClock: await advanceTestClock(s, testClocks, req.id, req.frozenTime),
      })),

    deleteTestClock: (req) =>
      mutate(context, M.deleteTestClock, req, async (s) => {
        await deleteTestClock(s, req.id);
        return {};
      }),
  };
}
