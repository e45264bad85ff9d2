// CustomerService over real gRPC against a real server on PostgreSQL: settings, lookups, paging and trees.

import { BillTo, PaymentTerms } from '@billing/proto/billing/subscription/v1/resources_pb';
import { customerCreated, customerTreeChanged, customerUpdated } from '@billing/proto/events/subscription';
import { reason, rpcError, violations } from '@billing/test/harness';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { type Platform, planSpec, published, startPlatform } from './fixtures.ts';

let p: Platform;
let seq = 0;
const ext = (label: string) => `${label}-${seq++}`;

beforeAll(async () => {
  p = await startPlatform({
    team: planSpec({ name: 'Team', seat: '15.00', currencies: { USD: { seat: '15.00' }, EUR: { seat: '14.00' } } }),
  });
});
afterAll(async () => p.stop());

async function customer(label: string, extra: Record<string, unknown> = {}) {
  const res = await p.customers.createCustomer({
    requestId: p.rid(),
    customer: { externalId: ext(label), name: label, ...extra },
  });
  if (!res.customer) throw new Error('no customer');
  return res.customer;
}

describe('customers', () => {
  test('a customer is created with defaults, found by both ids, and announced', async () => {
    const c = await customer('acme', {
      billing: { currencyCode: 'USD', timeZone: 'Europe/Berlin', invoiceEmail: 'ap@acme.test' },
    });
    expect(c.id).toMatch(/^cus_[0-9A-Z]{26}$/);
    expect(c.billing?.paymentTerms).toBe(PaymentTerms.CHARGE_AUTOMATICALLY);
    expect(c).toMatchObject({ billTo: BillTo.SELF, payerId: c.id, ancestorIds: [], currencyLocked: false });
    expect((await p.customers.getCustomer({ key: { case: 'id', value: c.id } })).customer?.externalId).toBe(
      c.externalId,
    );
    expect((await p.customers.getCustomer({ key: { case: 'externalId', value: c.externalId } })).customer?.id).toBe(
      c.id,
    );
    const events = await published(p, customerCreated, c.id);
    expect(events.map((e) => e.payload.customer?.id)).toEqual([c.id]);
  });

  test('a retry with the same request_id returns the first customer', async () => {
    const requestId = p.rid();
    const input = { externalId: ext('retry'), name: 'Retry' };
    const a = await p.customers.createCustomer({ requestId, customer: input });
    const b = await p.customers.createCustomer({ requestId, customer: input });
    expect(b.customer?.id).toBe(a.customer?.id);
  });

  test('an external id another customer has is refused with EXTERNAL_ID_TAKEN', async () => {
    const input = { externalId: ext('taken'), name: 'Taken' };
    await p.customers.createCustomer({ requestId: p.rid(), customer: input });
    const err = await rpcError(p.customers.createCustomer({ requestId: p.rid(), customer: input }));
    expect([err.code, reason(err)]).toEqual([Code.AlreadyExists, 'EXTERNAL_ID_TAKEN']);
  });

  test('bad settings are refused field by field and change nothing', async () => {
    const externalId = ext('bad');
    const err = await rpcError(
      p.customers.createCustomer({
        requestId: p.rid(),
        customer: {
          externalId,
          name: '',
          billing: {
            currencyCode: 'usd',
            timeZone: 'Mars/Olympus',
            netDays: 400,
            invoiceEmail: 'nope',
            taxCountryCode: 'Germany',
          },
          metadata: { ['k'.repeat(41)]: 'v' },
        },
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violations(err).sort()).toEqual(
      [
        'customer.name',
        'customer.billing.currency_code',
        'customer.billing.time_zone',
        'customer.billing.net_days',
        'customer.billing.invoice_email',
        'customer.billing.tax_country_code',
        `customer.metadata[${'k'.repeat(41)}]`,
      ].sort(),
    );
    const missing = await rpcError(p.customers.getCustomer({ key: { case: 'externalId', value: externalId } }));
    expect([missing.code, reason(missing)]).toEqual([Code.NotFound, 'CUSTOMER_NOT_FOUND']);
  });

  test('an update changes only the masked fields and says which changed', async () => {
    const c = await customer('upd', { billing: { currencyCode: 'USD', poNumber: 'PO-1' } });
    const res = await p.customers.updateCustomer({
      requestId: p.rid(),
      customer: { id: c.id, name: 'Renamed', billing: { poNumber: 'PO-2', invoiceEmail: 'ignored@x.test' } },
      updateMask: { paths: ['name', 'billing.po_number'] },
    });
    expect(res.customer?.name).toBe('Renamed');
    expect(res.customer?.billing).toMatchObject({ poNumber: 'PO-2', currencyCode: 'USD', invoiceEmail: '' });
    const events = await published(p, customerUpdated, c.id);
    expect(events.map((e) => e.payload.changedFields)).toEqual([['name', 'billing.po_number']]);
  });

  test('an update of a field the mask cannot name is refused naming update_mask', async () => {
    const c = await customer('upd-bad');
    const err = await rpcError(
      p.customers.updateCustomer({
        requestId: p.rid(),
        customer: { id: c.id, externalId: 'x' },
        updateMask: { paths: ['external_id'] },
      }),
    );
    expect([err.code, violations(err)]).toEqual([Code.InvalidArgument, ['update_mask']]);
  });

  /** Sets the currency of a customer. */
  const setCurrency = (id: string, code: string) =>
    p.customers.updateCustomer({
      requestId: p.rid(),
      customer: { id, billing: { currencyCode: code } },
      updateMask: { paths: ['billing.currency_code'] },
    });

  test('the currency can change until the first subscription, which takes it', async () => {
    const c = await customer('cur', { billing: { currencyCode: 'USD' } });
    await setCurrency(c.id, 'EUR');
    const sub = await p.subscriptions.createSubscription({ requestId: p.rid(), customerId: c.id, planKey: 'team' });
    expect(sub.subscription?.currencyCode).toBe('EUR');
    const after = (await p.customers.getCustomer({ key: { case: 'id', value: c.id } })).customer;
    expect(after).toMatchObject({ currencyLocked: true, billing: { currencyCode: 'EUR' } });
  });

  test("a first subscription in another currency than the customer's is refused with CURRENCY_MISMATCH", async () => {
    const c = await customer('cur-mismatch', { billing: { currencyCode: 'EUR' } });
    const mismatch = await rpcError(
      p.subscriptions.createSubscription({
        requestId: p.rid(),
        customerId: c.id,
        planKey: 'team',
        currencyCode: 'USD',
      }),
    );
    expect([mismatch.code, reason(mismatch)]).toEqual([Code.FailedPrecondition, 'CURRENCY_MISMATCH']);
  });

  test('once the customer has a subscription, a change of its currency is refused with CURRENCY_LOCKED', async () => {
    const c = await customer('cur-locked', { billing: { currencyCode: 'EUR' } });
    await p.subscriptions.createSubscription({ requestId: p.rid(), customerId: c.id, planKey: 'team' });
    const locked = await rpcError(setCurrency(c.id, 'USD'));
    expect([locked.code, reason(locked)]).toEqual([Code.FailedPrecondition, 'CURRENCY_LOCKED']);
    const after = (await p.customers.getCustomer({ key: { case: 'id', value: c.id } })).customer;
    expect(after?.billing?.currencyCode).toBe('EUR');
  });
});

describe('organisation trees', () => {
  test('children bill to their parent, payers follow the chain, and the tree lists parents first', async () => {
    const acme = await customer('acme-root', {
      billing: { paymentTerms: PaymentTerms.SEND_INVOICE, netDays: 30, poNumber: 'PO-7' },
    });
    const eng = await customer('acme-eng', { parentId: acme.id, billTo: BillTo.PARENT });
    const web = await customer('acme-web', { parentId: eng.id, billTo: BillTo.PARENT });
    const lab = await customer('acme-lab', { parentId: eng.id, billTo: BillTo.SELF });
    expect([eng.payerId, web.payerId, lab.payerId]).toEqual([acme.id, acme.id, lab.id]);
    expect(web.ancestorIds).toEqual([eng.id, acme.id]);
    const tree = await p.customers.getCustomerTree({ customerId: acme.id });
    expect(tree.nodes.map((n) => [n.id, n.depth])).toEqual([
      [acme.id, 0],
      [eng.id, 1],
      [web.id, 2],
      [lab.id, 2],
    ]);
    const children = await p.customers.listCustomers({ parentId: eng.id });
    expect(children.customers.map((c) => c.id)).toEqual([web.id, lab.id]);
  });

  /** A chain of customers, each billed to its parent after the first. */
  async function chain(label: string, length: number) {
    const out = [await customer(`${label}-0`)];
    for (let i = 1; i < length; i++) {
      const parent = out[i - 1];
      out.push(await customer(`${label}-${i}`, { parentId: parent?.id, billTo: BillTo.PARENT }));
    }
    return out;
  }

  test('moving a subtree updates its descendants and says what moved', async () => {
    const [a, b, c] = await chain('mv', 3);
    const other = await customer('mv-other');
    if (!a || !b || !c) throw new Error('no chain');
    const moved = await p.customers.setCustomerParent({
      requestId: p.rid(),
      customerId: b.id,
      parentId: other.id,
      billTo: BillTo.PARENT,
    });
    expect(moved.customer).toMatchObject({ parentId: other.id, payerId: other.id, ancestorIds: [other.id] });
    const child = (await p.customers.getCustomer({ key: { case: 'id', value: c.id } })).customer;
    expect(child).toMatchObject({ payerId: other.id, ancestorIds: [b.id, other.id] });
    const events = await published(p, customerTreeChanged, b.id);
    expect(events.map((e) => [e.payload.previousParentId, e.payload.previousPayerId, e.payload.descendantIds])).toEqual(
      [[a.id, a.id, [c.id]]],
    );
  });

  test('a move under a descendant is refused with TREE_CYCLE', async () => {
    const [a, , c] = await chain('cycle', 3);
    const cycle = await rpcError(
      p.customers.setCustomerParent({
        requestId: p.rid(),
        customerId: a?.id ?? '',
        parentId: c?.id ?? '',
        billTo: BillTo.SELF,
      }),
    );
    expect([cycle.code, reason(cycle)]).toEqual([Code.FailedPrecondition, 'TREE_CYCLE']);
  });

  test('a move under itself is refused with TREE_CYCLE', async () => {
    const [, b] = await chain('self', 2);
    const self = await rpcError(
      p.customers.setCustomerParent({
        requestId: p.rid(),
        customerId: b?.id ?? '',
        parentId: b?.id ?? '',
        billTo: BillTo.SELF,
      }),
    );
    expect(reason(self)).toBe('TREE_CYCLE');
  });

  test('a customer six levels deep is refused with TREE_TOO_DEEP', async () => {
    const levels = await chain('deep', 5);
    const tooDeep = await rpcError(
      p.customers.createCustomer({
        requestId: p.rid(),
        customer: { externalId: ext('deep-f'), name: 'f', parentId: levels[4]?.id },
      }),
    );
    expect([tooDeep.code, reason(tooDeep)]).toEqual([Code.FailedPrecondition, 'TREE_TOO_DEEP']);
  });

  test('a move that would make a tree six levels deep is refused with TREE_TOO_DEEP and moves nothing', async () => {
    const levels = await chain('deep-move', 5);
    const x = await customer('mv-x');
    const y = await customer('mv-y', { parentId: x.id });
    const deepMove = await rpcError(
      p.customers.setCustomerParent({
        requestId: p.rid(),
        customerId: x.id,
        parentId: levels[4]?.id ?? '',
        billTo: BillTo.SELF,
      }),
    );
    expect(reason(deepMove)).toBe('TREE_TOO_DEEP');
    expect((await p.customers.getCustomer({ key: { case: 'id', value: y.id } })).customer?.ancestorIds).toEqual([x.id]);
  });

  test('a root billed to a parent is refused naming bill_to', async () => {
    const [, b] = await chain('root', 2);
    const root = await rpcError(
      p.customers.setCustomerParent({
        requestId: p.rid(),
        customerId: b?.id ?? '',
        parentId: '',
        billTo: BillTo.PARENT,
      }),
    );
    expect([root.code, violations(root)]).toEqual([Code.InvalidArgument, ['bill_to']]);
  });

  test('lists page in creation order with filters', async () => {
    const marker = ext('page');
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await customer(`${marker}-${i}`));
    const seen: string[] = [];
    let pageToken = '';
    do {
      const page = await p.customers.listCustomers({ pageSize: 2, pageToken, query: marker.toUpperCase() });
      seen.push(...page.customers.map((c) => c.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(made.map((c) => c.id));
  });

  test('a page token that no list returned is refused', async () => {
    const err = await rpcError(p.customers.listCustomers({ pageSize: 2, pageToken: 'garbage' }));
    expect(err.code).toBe(Code.InvalidArgument);
  });
});
