import type { Customer } from '@billing/proto/billing/subscription/v1/resources_pb';
import { subtree } from '../adapter/customers-repository.ts';
import type { ReadContext } from './context.ts';
import { requireCustomer } from './lookups.ts';

/** A customer of a tree, with its depth in the whole tree (0 for the root). */
export interface TreeNode {
  /** The customer. */
  customer: Customer;
  /** Its depth from the root of its organisation. */
  depth: number;
}

/** The subtree under a customer (itself first), parents before children, with depths in the whole tree. */
export async function getCustomerTree(ctx: ReadContext, customerId: string): Promise<TreeNode[]> {
  const top = await requireCustomer(ctx.em, customerId);
  const nodes = await subtree(ctx.em, top.id);
  return nodes.map(({ customer, depth }) => ({ customer, depth: top.ancestorIds.length + depth }));
}
