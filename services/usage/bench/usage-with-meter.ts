// What every usage benchmark starts from: a usage service on `bus` with the harness's build minutes meter (a sum
// of `minutes` over `build.finished` events), saved directly rather than waited for from the catalog.
import type { EventBus } from '@billing/kit/bus';
import { MeterSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { buildMinutesMeter, startTestService, type TestService } from '@billing/test/harness';
import { create } from '@bufbuild/protobuf';
import { saveMeter } from '../src/adapter/meter-repository.ts';
import { usageService } from '../src/definition.ts';

/** Starts the usage service with the build minutes meter under the key `key`, grouped by `groupBy`. */
export async function startUsageWithMeter(bus: EventBus, key: string, groupBy: string[] = []): Promise<TestService> {
  const service = await startTestService(usageService, { bus });
  const meter = create(MeterSchema, { ...buildMinutesMeter, key, name: key, groupBy });
  await service.context.db.transaction((em) => saveMeter(em, meter, new Date()));
  return service;
}
