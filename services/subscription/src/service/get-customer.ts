import type { Customer } from '@billing/proto/billing/subscription/v1/resources_pb';
import { findCustomerByExternalId } from '../adapter/customers-repository.ts';
import { customerNotFoundByExternalId } from '../domain/errors.ts';
import type { CustomerKey } from '../domain/validate.ts';
import type { ReadContext } from './context.ts';
import { requireCustomer } from './lookups.ts';

/** The customer with this id or external id, or NOT_FOUND CUSTOMER_NOT_FOUND. */
export async function getCustomer(ctx: ReadContext, key: CustomerKey): Promise<Customer> {
  if ('id' in key) return requireCustomer(ctx.em, key.id);
  const customer = await findCustomerByExternalId(ctx.em, key.externalId);
  if (!customer) throw customerNotFoundByExternalId(key.externalId);
  return customer;
}
