// The CustomerService handlers: convert the request, call the use case, convert the result. Nothing else.
import { InvalidArgumentError, NotFoundError } from '@billing/kit/errors';
import { mutate } from '@billing/kit/mutation';
import { listPage } from '@billing/kit/pagination';
import type { ServiceContext } from '@billing/kit/runtime';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import { CustomerTreeNodeSchema } from '@billing/proto/billing/subscription/v1/resources_pb';
import { create } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import * as store from '../adapter/store.ts';
import { createCustomer, requireCustomer, setCustomerParent, updateCustomer } from '../service/customers.ts';

const M = CustomerService.method;

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw new InvalidArgumentError(`${field} is required`, [{ field, description: 'required' }]);
  return value;
}

/** Builds the CustomerService implementation over a service context. */
export function customerHandlers(context: ServiceContext): ServiceImpl<typeof CustomerService> {
  const read = () => ({ em: context.db.fork() });
  return {
    createCustomer: (req) =>
      mutate(context, M.createCustomer, req, async (s) => ({
        customer: await createCustomer(s, required(req.customer, 'customer')),
      })),

    async getCustomer(req) {
      if (req.key.case === 'id') return { customer: await requireCustomer(read(), req.key.value) };
      if (req.key.case === 'externalId') {
        const customer = await store.findCustomerByExternalId(read().em, req.key.value);
        if (!customer) throw new NotFoundError('CUSTOMER_NOT_FOUND', `no customer with external id "${req.key.value}"`);
        return { customer };
      }
      throw new InvalidArgumentError('id or external_id is required', [{ field: 'key', description: 'required' }]);
    },

    updateCustomer: (req) =>
      mutate(context, M.updateCustomer, req, async (s) => ({
        customer: await updateCustomer(s, required(req.customer, 'customer'), req.updateMask?.paths ?? []),
      })),

    async listCustomers(req) {
      if (req.externalIds.length > 100) {
        throw new InvalidArgumentError('too many external ids', [
          { field: 'external_ids', description: 'at most 100' },
        ]);
      }
      const filters = {
        parentId: req.parentId,
        rootsOnly: req.rootsOnly,
        testClockId: req.testClockId,
        externalIds: req.externalIds,
        query: req.query,
      };
      const { items, nextPageToken } = await listPage(
        req,
        filters,
        (page) => store.listCustomers(read().em, filters, page),
        (row) => row.seq,
      );
      return { customers: items.map((row) => row.customer), nextPageToken };
    },

    setCustomerParent: (req) =>
      mutate(context, M.setCustomerParent, req, async (s) => ({
        customer: await setCustomerParent(s, req.customerId, req.parentId, req.billTo),
      })),

    async getCustomerTree(req) {
      const em = read().em;
      const top = await requireCustomer({ em }, req.customerId);
      const nodes = await store.subtree(em, top.id);
      return {
        nodes: nodes.map(({ customer, depth }) =>
          create(CustomerTreeNodeSchema, {
            id: customer.id,
            externalId: customer.externalId,
            name: customer.name,
            parentId: customer.parentId,
            billTo: customer.billTo,
            depth: top.ancestorIds.length + depth,
          }),
        ),
      };
    },
  };
}
