import { createMemoryBus } from '../src/memory-bus.ts';
import { describeBusContract } from './bus-contract.ts';

describeBusContract('in-process bus', async () => {
  const bus = createMemoryBus({ redeliveryDelayMs: 10 });
  return { bus, destroy: () => bus.close() };
});
