import { recordEvent } from '@billing/kit/outbox';
import {
  BillingSettingsSchema,
  type Customer,
  CustomerSchema,
} from '@billing/proto/billing/subscription/v1/resources_pb';
import { customerUpdated } from '@billing/proto/events/subscription';
import { clone, create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { saveCustomer } from '../adapter/customers-repository.ts';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { changedFields } from '../domain/customer.ts';
import { currencyLocked } from '../domain/errors.ts';
import { type UpdateCustomerInput, withBillingDefaults } from '../domain/validate.ts';
import { eventContext, type WriteContext } from './context.ts';
import { requireCustomer } from './lookups.ts';

/**
 * Changes the fields an update names; the currency only until the customer's first subscription. An update that
 * changes nothing publishes nothing.
 */
export async function updateCustomer(ctx: WriteContext, input: UpdateCustomerInput): Promise<Customer> {
  const customer = await requireCustomer(ctx.em, input.id, true);
  const next = clone(CustomerSchema, customer);
  if (input.name !== undefined) next.name = input.name;
  if (input.metadata !== undefined) next.metadata = input.metadata;
  next.billing = withBillingDefaults(
    Object.assign(clone(BillingSettingsSchema, customer.billing ?? create(BillingSettingsSchema)), input.billing),
  );
  const changed = changedFields(customer, next);
  if (changed.includes('billing.currency_code') && customer.currencyLocked) throw currencyLocked(customer.id);
  if (changed.length === 0) return customer;
  const now = await clockTime(ctx.em, customer.testClockId, ctx.now);
  next.updateTime = timestampFromDate(now);
  await saveCustomer(ctx.em, next);
  await recordEvent(
    ctx.em,
    customerUpdated,
    { customer: next, changedFields: changed },
    eventContext(ctx, next.id, now),
  );
  return next;
}
