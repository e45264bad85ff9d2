import { deleteTestStreams, TEST_NATS_URL, testLogger, testSubjectPrefix, waitFor } from '@billing/test/harness';
import { expect, test } from '@jest/globals';
import { connectNatsBus } from '../src/nats-bus.ts';
import { describeBusContract, message } from './bus-contract.ts';

describeBusContract('NATS JetStream', async () => {
  const prefix = testSubjectPrefix('bus');
  const bus = await connectNatsBus({
    servers: [TEST_NATS_URL],
    subjectPrefix: prefix,
    name: 'bus-test',
    logger: testLogger,
  });
  return {
    bus,
    async destroy() {
      await bus.close();
      await deleteTestStreams(prefix);
    },
  };
});

/** Thirty messages published, then handled by two replicas of one durable; what they saw. */
async function handleOnTwoReplicas(): Promise<{ sent: number[]; handled: number[]; overlaps: number }> {
  const prefix = testSubjectPrefix('replicas');
  const replica = () =>
    connectNatsBus({ servers: [TEST_NATS_URL], subjectPrefix: prefix, name: 'replica', logger: testLogger });
  const replicas = [await replica(), await replica()];
  try {
    const [first] = replicas;
    await first?.ensureStream('alpha');
    const sent = Array.from({ length: 30 }, (_, i) => message('alpha', 'changed', 'agg-r', i + 1));
    for (const m of sent) await first?.publish(m);
    const handled: number[] = [];
    let running = 0;
    let overlaps = 0;
    for (const bus of replicas) {
      await bus.consume({
        stream: 'alpha',
        durable: 'test-replicas',
        subjects: ['billing.alpha.>'],
        handle: async ({ message }) => {
          if (++running > 1) overlaps++;
          // Handling takes a random while, so the other replica has every chance to take a message meanwhile.
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
          handled.push(message.envelope.aggregateSeq);
          running--;
        },
      });
    }
    await waitFor(
      () => handled.length,
      (n) => n >= 30,
    );
    return { sent: sent.map((m) => m.envelope.aggregateSeq), handled, overlaps };
  } finally {
    await Promise.all(replicas.map((bus) => bus.close()));
    await deleteTestStreams(prefix);
  }
}

test('two replicas of one durable handle its messages one at a time', async () => {
  const { overlaps } = await handleOnTwoReplicas();
  expect(overlaps).toBe(0);
});

test('two replicas of one durable handle its messages in stream order', async () => {
  const { sent, handled } = await handleOnTwoReplicas();
  expect(handled).toEqual(sent);
});
