// The guarantees every EventBus keeps, as one suite run against each implementation.
import { waitFor } from '@billing/test/harness';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import type { Delivery, EventBus, Subscription } from '../src/bus.ts';
import type { BusMessage } from '../src/events.ts';
import { newUlid } from '../src/ids.ts';

/** A message on `billing.<service>.thing.<event>` about `aggregateId`. */
export function message(service: string, event: string, aggregateId: string, seq: number, body = ''): BusMessage {
  return {
    subject: `billing.${service}.thing.${event}`,
    envelope: {
      eventId: newUlid(),
      eventType: `thing.${event}.v1`,
      schema: 'test.Thing',
      aggregateId,
      aggregateSeq: seq,
      occurredTime: new Date('2026-01-15T10:00:00.000Z'),
      producer: service,
      requestId: 'req-1',
    },
    payload: new TextEncoder().encode(body || `${aggregateId}#${seq}`),
  };
}

/** Runs the bus contract against buses made by `makeBus` (one per test; `destroy` cleans up). */
export function describeBusContract(
  name: string,
  makeBus: () => Promise<{ bus: EventBus; destroy(): Promise<void> }>,
): void {
  describe(`EventBus contract: ${name}`, () => {
    let bus: EventBus;
    let destroy: () => Promise<void>;
    const subscriptions: Subscription[] = [];

    beforeEach(async () => {
      ({ bus, destroy } = await makeBus());
      await bus.ensureStream('alpha');
    });

    afterEach(async () => {
      await Promise.all(subscriptions.splice(0).map((s) => s.stop()));
      await destroy();
    });

    const collect = async (durable: string, subjects: string[], fail?: (d: Delivery) => boolean) => {
      const seen: Delivery[] = [];
      subscriptions.push(
        await bus.consume({
          stream: 'alpha',
          durable,
          subjects,
          handle: async (delivery) => {
            seen.push(delivery);
            if (fail?.(delivery)) throw new Error('handler failed');
          },
        }),
      );
      return seen;
    };

    test('delivers published messages in order with their envelope', async () => {
      const sent = [1, 2, 3, 4, 5].map((seq) => message('alpha', 'changed', 'agg-1', seq));
      for (const m of sent) expect(await bus.publish(m)).toEqual({ duplicate: false });
      const seen = await collect('test-order', ['billing.alpha.>']);
      await waitFor(
        () => seen.length,
        (n) => n === 5,
      );
      expect(seen.map((d) => d.message.envelope)).toEqual(sent.map((m) => m.envelope));
      expect(seen.map((d) => d.message.subject)).toEqual(sent.map((m) => m.subject));
      expect(seen.map((d) => new TextDecoder().decode(d.message.payload))).toEqual(
        sent.map((_, i) => `agg-1#${i + 1}`),
      );
    });

    test('reports a republished event id as a duplicate', async () => {
      const m = message('alpha', 'changed', 'agg-2', 1);
      expect(await bus.publish(m)).toEqual({ duplicate: false });
      expect(await bus.publish(m)).toEqual({ duplicate: true });
    });

    test('delivers a republished event id once', async () => {
      const m = message('alpha', 'changed', 'agg-7', 1);
      await bus.publish(m);
      await bus.publish(m);
      const last = message('alpha', 'changed', 'agg-7', 2);
      await bus.publish(last);
      const seen = await collect('test-dup', ['billing.alpha.>']);
      // Deliveries come in stream order: once the last one is here, a second copy of the first would be too.
      await waitFor(
        () => seen,
        (s) => s.some((d) => d.message.envelope.eventId === last.envelope.eventId),
      );
      expect(seen.filter((d) => d.message.envelope.eventId === m.envelope.eventId)).toHaveLength(1);
    });

    test('redelivers a message whose handler threw, counting deliveries', async () => {
      const m = message('alpha', 'changed', 'agg-3', 1);
      await bus.publish(m);
      let failures = 0;
      const seen = await collect('test-redeliver', ['billing.alpha.>'], () => failures++ < 2);
      await waitFor(
        () => seen.length,
        (n) => n === 3,
      );
      expect(seen.map((d) => d.deliveryCount)).toEqual([1, 2, 3]);
    });

    test('a message whose handler threw is redelivered before any message after it', async () => {
      const sent = [1, 2, 3].map((seq) => message('alpha', 'changed', 'agg-6', seq));
      for (const m of sent) await bus.publish(m);
      let failures = 0;
      const seen = await collect(
        'test-redeliver-order',
        ['billing.alpha.>'],
        (d) => d.message.envelope.aggregateSeq === 1 && failures++ < 1,
      );
      await waitFor(
        () => seen.length,
        (n) => n === 4,
      );
      expect(seen.map((d) => [d.message.envelope.aggregateSeq, d.deliveryCount])).toEqual([
        [1, 1],
        [1, 2],
        [2, 1],
        [3, 1],
      ]);
    });

    test('delivers only the subjects a consumer filters on', async () => {
      await bus.publish(message('alpha', 'created', 'agg-4', 1));
      await bus.publish(message('alpha', 'deleted', 'agg-4', 2));
      const marker = message('alpha', 'created', 'agg-4', 3);
      await bus.publish(marker);
      const seen = await collect('test-filter', ['billing.alpha.thing.created']);
      await waitFor(
        () => seen.length,
        (n) => n === 2,
      );
      expect(seen.map((d) => d.message.subject)).toEqual([
        'billing.alpha.thing.created',
        'billing.alpha.thing.created',
      ]);
    });

    test('a durable consumer resumes after what it acknowledged', async () => {
      await bus.publish(message('alpha', 'changed', 'agg-5', 1));
      const first = await collect('test-durable', ['billing.alpha.>']);
      await waitFor(
        () => first.length,
        (n) => n === 1,
      );
      const subscription = subscriptions.pop();
      await subscription?.stop();
      const later = message('alpha', 'changed', 'agg-5', 2);
      const marker = message('alpha', 'changed', 'agg-5', 3);
      await bus.publish(later);
      await bus.publish(marker);
      const second = await collect('test-durable', ['billing.alpha.>']);
      // Deliveries come in stream order: once the marker is here, the acknowledged message would be too, had the
      // consumer started over.
      await waitFor(
        () => second,
        (s) => s.some((d) => d.message.envelope.eventId === marker.envelope.eventId),
      );
      expect(second.map((d) => d.message.envelope.eventId)).toEqual([later.envelope.eventId, marker.envelope.eventId]);
    });
  });
}
