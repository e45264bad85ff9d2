import { recordEvent } from '@billing/kit/outbox';
import { type Customer, CustomerSchema } from '@billing/proto/billing/subscription/v1/resources_pb';
import { customerTreeChanged } from '@billing/proto/events/subscription';
import { clone, equals } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { lockCustomerTrees, saveCustomer, subtree } from '../adapter/customers-repository.ts';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { MAX_DEPTH, treePlace } from '../domain/customer.ts';
import { testClockMismatch, treeCycle, treeTooDeep } from '../domain/errors.ts';
import type { SetCustomerParentInput } from '../domain/validate.ts';
import { eventContext, type WriteContext } from './context.ts';
import { requireCustomer } from './lookups.ts';

/** Moves a customer and its subtree under another parent (or to the root), and sets who pays for it. */
export async function setCustomerParent(ctx: WriteContext, input: SetCustomerParentInput): Promise<Customer> {
  const { customerId, parentId, billTo } = input;
  await lockCustomerTrees(ctx.em);
  const customer = await requireCustomer(ctx.em, customerId, true);
  const tree = await subtree(ctx.em, customerId);
  const parent = parentId ? await requireCustomer(ctx.em, parentId) : undefined;
  if (parent && tree.some((n) => n.customer.id === parent.id)) throw treeCycle(customerId, parent.id);
  if (parent && parent.testClockId !== customer.testClockId) throw testClockMismatch();
  const height = Math.max(...tree.map((n) => n.depth));
  const depth = parent ? parent.ancestorIds.length + 1 : 0;
  if (depth + height > MAX_DEPTH) throw treeTooDeep(MAX_DEPTH + 1);
  if (customer.parentId === parentId && customer.billTo === billTo) return customer;
  const now = await clockTime(ctx.em, customer.testClockId, ctx.now);
  // Parents before children: each node's place follows from its parent's new place.
  const placed = new Map<string, Customer>();
  for (const { customer: node } of tree) {
    const next = clone(CustomerSchema, node);
    if (node.id === customerId) {
      next.parentId = parentId;
      next.billTo = billTo;
      Object.assign(next, treePlace(node.id, billTo, parent));
      next.updateTime = timestampFromDate(now);
    } else {
      Object.assign(next, treePlace(node.id, node.billTo, placed.get(node.parentId)));
    }
    placed.set(node.id, next);
    if (!equals(CustomerSchema, node, next)) await saveCustomer(ctx.em, next);
  }
  const moved = placed.get(customerId) ?? customer;
  await recordEvent(
    ctx.em,
    customerTreeChanged,
    {
      customer: moved,
      previousParentId: customer.parentId,
      previousBillTo: customer.billTo,
      previousPayerId: customer.payerId,
      descendantIds: tree.slice(1).map((n) => n.customer.id),
    },
    eventContext(ctx, customerId, now),
  );
  return moved;
}
