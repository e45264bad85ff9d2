import { deleteTestStreams, TEST_NATS_URL, testLogger, testSubjectPrefix } from '@billing/test/harness';
import { connectNatsBus } from '../src/nats-bus.ts';
import { describeBusContract } from './bus-contract.ts';

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
