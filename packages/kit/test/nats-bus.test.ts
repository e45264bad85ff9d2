import { deleteTestStreams, TEST_NATS_URL, testLogger, testSubjectPrefix } from '@billing/test/harness';
import { expect, test } from '@jest/globals';
import { connectNatsBus } from '../src/nats-bus.ts';
import { describeBusContract, eventually, message } from './bus-contract.ts';

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

test('two replicas of one durable handle its messages one at a time, in stream order', async () => {
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
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
          handled.push(message.envelope.aggregateSeq);
          running--;
        },
      });
    }
    await eventually(() => handled.length >= 30, 'thirty deliveries');
    expect(handled).toEqual(sent.map((m) => m.envelope.aggregateSeq));
    expect(overlaps).toBe(0);
  } finally {
    await Promise.all(replicas.map((bus) => bus.close()));
    await deleteTestStreams(prefix);
  }
});
