// AmendEvent: a stored event gets a new time or new properties (its type stays), and the change of every meter
// and period it counted or now counts in is answered and published (usage.event.amended).
import type { MutationScope } from '@billing/kit/mutation';
import type { AmendEventInput } from '../domain/validate.ts';
import { type CorrectionResult, correctEvent } from './correction.ts';

/** Amends a stored event; returns it as it now is and the resulting changes. */
export function amendEvent(scope: MutationScope, input: AmendEventInput): Promise<CorrectionResult> {
  return correctEvent(scope, input, { kind: 'amend', time: input.time, properties: input.properties });
}
