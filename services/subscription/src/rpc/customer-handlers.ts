// The CustomerService handlers: validate the request, call the use case, convert the result. Nothing else.
import { mutate } from '@billing/kit/mutation';
import type { ServiceContext } from '@billing/kit/service-context';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import type { ServiceImpl } from '@connectrpc/connect';
import {
  validateCreateCustomer,
  validateGetCustomer,
  validateId,
  validateListCustomers,
  validateSetCustomerParent,
  validateUpdateCustomer,
} from '../domain/validate.ts';
import { createCustomer } from '../service/create-customer.ts';
import { getCustomer } from '../service/get-customer.ts';
import { getCustomerTree } from '../service/get-customer-tree.ts';
import { listCustomers } from '../service/list-customers.ts';
import { setCustomerParent } from '../service/set-customer-parent.ts';
import { updateCustomer } from '../service/update-customer.ts';
import { toProtoCustomerTreeNode } from './convert.ts';

const M = CustomerService.method;

/** Builds the CustomerService implementation over a service context. */
export function customerHandlers(context: ServiceContext): ServiceImpl<typeof CustomerService> {
  const read = () => ({ em: context.db.fork(), now: context.clock.now() });
  return {
    async createCustomer(req) {
      const input = validateCreateCustomer(req);
      return mutate(context, M.createCustomer, req, async (s) => ({ customer: await createCustomer(s, input) }));
    },

    async getCustomer(req) {
      return { customer: await getCustomer(read(), validateGetCustomer(req)) };
    },

    async updateCustomer(req) {
      const input = validateUpdateCustomer(req);
      return mutate(context, M.updateCustomer, req, async (s) => ({ customer: await updateCustomer(s, input) }));
    },

    async listCustomers(req) {
      const page = await listCustomers(read(), validateListCustomers(req));
      return { customers: page.items, nextPageToken: page.nextPageToken };
    },

    async setCustomerParent(req) {
      const input = validateSetCustomerParent(req);
      return mutate(context, M.setCustomerParent, req, async (s) => ({ customer: await setCustomerParent(s, input) }));
    },

    async getCustomerTree(req) {
      const nodes = await getCustomerTree(read(), validateId(req.customerId, 'customer_id'));
      return { nodes: nodes.map(toProtoCustomerTreeNode) };
    },
  };
}
