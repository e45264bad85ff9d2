import { createMemoryBus } from '@billing/kit/memory-bus';
import { startUsageWithMeter } from './usage-with-meter.ts';

const bus = createMemoryBus();
const service = await startUsageWithMeter(bus, 'build_minutes', ['os']);
console.log(service.database.url);
process.exit(0);
