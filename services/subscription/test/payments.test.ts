// S10 from the subscription's side, over real NATS JetStream: invoicing's payment outcomes make a subscription
// past due, active again, or ended; a redelivered outcome changes nothing twice.

import type { EventBus } from '@billing/kit/bus';
import { queryBound } from '@billing/kit/db';
import { newUlid } from '@billing/kit/ids';
import { connectNatsBus } from '@billing/kit/nats-bus';
import { InvoiceStatus } from '@billing/proto/billing/invoicing/v1/resources_pb';
import { EndReason, SubscriptionState } from '@billing/proto/billing/subscription/v1/resources_pb';
import type { EventType } from '@billing/proto/events/define';
import { invoiceMarkedUncollectible, paymentFailed, paymentSucceeded } from '@billing/proto/events/invoicing';
import {
  subscriptionActivated,
  subscriptionEnded,
  subscriptionPastDue,
  subscriptionPeriodClosed,
} from '@billing/proto/events/subscription';
import {
  deleteTestStreams,
  TEST_NATS_URL,
  teamSpec,
  testLogger,
  testSubjectPrefix,
  waitFor,
} from '@billing/test/harness';
import { create, type DescMessage, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { iso, type Platform, published, startPlatform, ts } from './fixtures.ts';

const prefix = testSubjectPrefix('sub-payments');
let bus: EventBus;
let p: Platform;

beforeAll(async () => {
  bus = await connectNatsBus({
    servers: [TEST_NATS_URL],
    subjectPrefix: prefix,
    name: 'subscription',
    logger: testLogger,
  });
  await bus.ensureStream('invoicing');
  p = await startPlatform({ team: teamSpec() }, { bus });
});
afterAll(async () => {
  await p.stop();
  await bus.close();
  await deleteTestStreams(prefix);
});

/** Publishes an invoicing event as invoicing would, at `at`; returns its id (to publish it again). */
async function publish<S extends DescMessage>(
  event: EventType<S>,
  payload: MessageInitShape<S>,
  at: string,
  eventId = newUlid(),
) {
  await bus.publish({
    subject: event.subject,
    envelope: {
      eventId,
      eventType: event.type,
      schema: event.schema.typeName,
      aggregateId: 'inv_test',
      aggregateSeq: 1,
      occurredTime: new Date(at),
      producer: 'invoicing',
    },
    payload: toBinary(event.schema, create(event.schema, payload)),
  });
  return eventId;
}

async function activeSubscription() {
  const { id } = await activeSubscriptionOnClock();
  return id;
}

async function activeSubscriptionOnClock() {
  const clock = (
    await p.subscriptions.createTestClock({
      requestId: p.rid(),
      name: 'dunning',
      frozenTime: ts('2026-01-15T00:00:00Z'),
    })
  ).testClock;
  const customer = (
    await p.customers.createCustomer({
      requestId: p.rid(),
      customer: {
        externalId: `pay-${newUlid()}`,
        name: 'Payer',
        testClockId: clock?.id,
        billing: { currencyCode: 'USD' },
      },
    })
  ).customer;
  const res = await p.subscriptions.createSubscription({
    requestId: p.rid(),
    customerId: customer?.id ?? '',
    planKey: 'team',
  });
  return { id: res.subscription?.id ?? '', clockId: clock?.id ?? '' };
}

const state = (id: string) => async () => (await p.subscriptions.getSubscription({ id })).subscription;

/** A failure of the first payment of invoice `inv_1` for `id`, entitled until Jan 22. */
const failureOf = (id: string, attempt = 1) => ({
  payment: { id: `pay_${attempt}`, invoiceId: 'inv_1', attempt },
  subscriptionIds: [id],
  final: false,
  graceEndTime: ts('2026-01-22T00:00:00Z'),
});

/** Waits until the consumer has applied the event with this id (the stream delivers in order). */
const applied = (eventId: string) =>
  waitFor(
    () =>
      queryBound<{ n: number }>(
        p.service.context.db.fork(),
        'select count(*)::integer as n from processed_event where event_id = $1',
        [eventId],
      ),
    (rows) => rows[0]?.n === 1,
  );

test('a failed payment makes an active subscription past due, entitled until the grace end', async () => {
  const id = await activeSubscription();
  await publish(paymentFailed, failureOf(id), '2026-01-16T00:00:00Z');
  const pastDue = await waitFor(state(id), (s) => s?.state === SubscriptionState.PAST_DUE);
  expect(pastDue?.pastDueTime && timestampDate(pastDue.pastDueTime).toISOString()).toBe('2026-01-16T00:00:00.000Z');
  const notices = await published(p, subscriptionPastDue, id);
  expect(
    notices.map((n) => [
      n.payload.invoiceId,
      n.payload.graceEndTime && timestampDate(n.payload.graceEndTime).toISOString(),
    ]),
  ).toEqual([['inv_1', '2026-01-22T00:00:00.000Z']]);
});

test('a redelivered failure and a later failure of the same invoice change nothing more', async () => {
  const id = await activeSubscription();
  const eventId = await publish(paymentFailed, failureOf(id), '2026-01-16T00:00:00Z');
  await waitFor(state(id), (s) => s?.state === SubscriptionState.PAST_DUE);
  const before = await published(p, subscriptionPastDue, id);
  await publish(paymentFailed, failureOf(id), '2026-01-16T00:00:00Z', eventId);
  await applied(await publish(paymentFailed, failureOf(id, 2), '2026-01-18T00:00:00Z'));
  expect(await published(p, subscriptionPastDue, id)).toEqual(before);
  expect(iso((await state(id)())?.pastDueTime)).toBe('2026-01-16T00:00:00.000Z');
});

test('the payment that settles the invoice makes a past-due subscription active again', async () => {
  const id = await activeSubscription();
  await publish(paymentFailed, failureOf(id), '2026-01-16T00:00:00Z');
  await waitFor(state(id), (s) => s?.state === SubscriptionState.PAST_DUE);
  await publish(
    paymentSucceeded,
    { payment: { id: 'pay_3', invoiceId: 'inv_1' }, subscriptionIds: [id], invoiceStatus: InvoiceStatus.PAID },
    '2026-01-19T00:00:00Z',
  );
  const active = await waitFor(state(id), (s) => s?.state === SubscriptionState.ACTIVE);
  expect(active?.pastDueTime).toBeUndefined();
  const activated = await published(p, subscriptionActivated, id);
  expect(activated.map((a) => [a.payload.previousState, a.occurredAt.toISOString()])).toEqual([
    [SubscriptionState.PAST_DUE, '2026-01-19T00:00:00.000Z'],
  ]);
});

test('an invoice given up on ends the subscriptions it bills', async () => {
  const id = await activeSubscription();
  await publish(
    invoiceMarkedUncollectible,
    { invoice: { id: 'inv_2', subscriptionIds: [id] }, dunningExhausted: true },
    '2026-01-25T00:00:00Z',
  );
  const ended = await waitFor(state(id), (s) => s?.state === SubscriptionState.ENDED);
  expect(ended?.endReason).toBe(EndReason.UNCOLLECTIBLE);
  expect((await published(p, subscriptionEnded, id)).map((e) => e.occurredAt.toISOString())).toEqual([
    '2026-01-25T00:00:00.000Z',
  ]);
});

test('an invoice given up on at a time before the current period never closes that period backwards', async () => {
  const { id, clockId } = await activeSubscriptionOnClock();
  await p.subscriptions.advanceTestClock({ requestId: p.rid(), id: clockId, frozenTime: ts('2026-02-20T00:00:00Z') });
  await publish(
    invoiceMarkedUncollectible,
    { invoice: { id: 'inv_3', subscriptionIds: [id] }, dunningExhausted: true },
    '2026-02-10T00:00:00Z',
  );
  const ended = await waitFor(state(id), (s) => s?.state === SubscriptionState.ENDED);
  expect(ended?.endTime && timestampDate(ended.endTime).toISOString()).toBe('2026-02-15T00:00:00.000Z');
  const closes = await published(p, subscriptionPeriodClosed, id);
  expect(
    closes.map((c) =>
      [c.payload.periodNumber, c.payload.closedPeriod?.startTime, c.payload.closedPeriod?.endTime].map((x) =>
        typeof x === 'object' && x ? timestampDate(x).toISOString() : x,
      ),
    ),
  ).toEqual([
    [1, '2026-01-15T00:00:00.000Z', '2026-02-15T00:00:00.000Z'],
    [2, '2026-02-15T00:00:00.000Z', '2026-02-15T00:00:00.000Z'],
  ]);
});
