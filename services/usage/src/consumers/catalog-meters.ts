// The usage service's copy of the catalog's meters, kept from catalog events (the catalog's stream keeps its
// history, so a new usage database catches up from the first event).

import type { ConsumerSpec } from '@billing/kit/consumer';
import { on } from '@billing/kit/consumer';
import { meterArchived, meterCreated } from '@billing/proto/events/catalog';
import { recordMeter } from '../service/record-meter.ts';

/** The consumer `usage-meters` of the catalog's meter events. */
export const catalogMetersConsumer: ConsumerSpec = {
  name: 'usage-meters',
  stream: 'catalog',
  handlers: [
    on(meterCreated, async (em, { payload, envelope }) => {
      if (payload.meter) await recordMeter(em, payload.meter, envelope.occurredTime, envelope.aggregateSeq);
    }),
    on(meterArchived, async (em, { payload, envelope }) => {
      if (payload.meter) {
        await recordMeter(em, { ...payload.meter, archived: true }, envelope.occurredTime, envelope.aggregateSeq);
      }
    }),
  ],
};
