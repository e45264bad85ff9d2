// Conversions between the use cases' results and the API's messages (requests are validated into domain inputs
// by domain/validate.ts).
import { type CustomerTreeNode, CustomerTreeNodeSchema } from '@billing/proto/billing/subscription/v1/resources_pb';
import { create } from '@bufbuild/protobuf';
import type { SubscriptionChange, SubscriptionRecord } from '../domain/subscription.ts';
import type { TreeNode } from '../service/get-customer-tree.ts';

/** A subscription as the API shows it (its internal state stays inside). */
export function toProtoSubscription(record: SubscriptionRecord) {
  return record.subscription;
}

/** The response of a change: the subscription after it and the proration items it created. */
export function toProtoSubscriptionChange(change: SubscriptionChange) {
  return { subscription: toProtoSubscription(change.record), prorationItems: change.prorationItems };
}

/** A node of GetCustomerTree. */
export function toProtoCustomerTreeNode({ customer, depth }: TreeNode): CustomerTreeNode {
  return create(CustomerTreeNodeSchema, {
    id: customer.id,
    externalId: customer.externalId,
    name: customer.name,
    parentId: customer.parentId,
    billTo: customer.billTo,
    depth,
  });
}
