// What every usage benchmark starts from: a usage service on `bus` with one sum meter of build minutes
// (`build.finished` events, value property `minutes`), saved directly rather than waited for from the catalog.
import type { EventBus } from '@billing/kit/bus';
import { MeterAggregation, MeterSchema } from '@billing/proto/billing/catalog/v1/resources_pb';
import { startTestService, type TestService } from '@billing/test/harness';
import { create } from '@bufbuild/protobuf';
import { saveMeter } from '../src/adapter/meter-repository.ts';
import { usageService } from '../src/definition.ts';

/** Starts the usage service with the sum meter `key`, grouped by `groupBy`. */
export async function startUsageWithMeter(bus: EventBus, key: string, groupBy: string[] = []): Promise<TestService> {
  const service = await startTestService(usageService, { bus });
  await service.context.db.transaction((em) =>
    saveMeter(
      em,
      create(MeterSchema, {
        key,
        name: key,
        eventType: 'build.finished',
        aggregation: MeterAggregation.SUM,
        valueProperty: 'minutes',
        groupBy,
      }),
      new Date(),
    ),
  );
  return service;
}
