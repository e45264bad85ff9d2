import { newUlid } from '@billing/kit/ids';
import { recordEvent } from '@billing/kit/outbox';
import { type Customer, CustomerSchema } from '@billing/proto/billing/subscription/v1/resources_pb';
import { customerCreated } from '@billing/proto/events/subscription';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { insertCustomer } from '../adapter/customers-repository.ts';
import { clockTime } from '../adapter/test-clocks-repository.ts';
import { MAX_DEPTH, treePlace } from '../domain/customer.ts';
import { externalIdTaken, testClockMismatch, treeTooDeep } from '../domain/errors.ts';
import type { CreateCustomerInput } from '../domain/validate.ts';
import { eventContext, type WriteContext } from './context.ts';
import { requireCustomer, requireTestClock } from './lookups.ts';

/** Creates a customer, under a parent and on a test clock when asked. */
export async function createCustomer(ctx: WriteContext, input: CreateCustomerInput): Promise<Customer> {
  if (input.testClockId) await requireTestClock(ctx.em, input.testClockId);
  const parent = input.parentId ? await requireCustomer(ctx.em, input.parentId) : undefined;
  if (parent && parent.testClockId !== input.testClockId) throw testClockMismatch();
  if (parent && parent.ancestorIds.length + 1 > MAX_DEPTH) throw treeTooDeep(MAX_DEPTH + 1);
  const now = await clockTime(ctx.em, input.testClockId, ctx.now);
  const id = `cus_${newUlid()}`;
  const customer = create(CustomerSchema, {
    id,
    externalId: input.externalId,
    name: input.name,
    billing: input.billing,
    parentId: input.parentId,
    billTo: input.billTo,
    ...treePlace(id, input.billTo, parent),
    testClockId: input.testClockId,
    currencyLocked: false,
    metadata: input.metadata,
    createTime: timestampFromDate(now),
    updateTime: timestampFromDate(now),
  });
  if (!(await insertCustomer(ctx.em, customer))) throw externalIdTaken(input.externalId);
  await recordEvent(ctx.em, customerCreated, { customer }, eventContext(ctx, id, now));
  return customer;
}
