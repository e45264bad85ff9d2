// VoidEvent: a stored event stops counting, and the change of every meter and period it counted in is answered
// and published (usage.event.voided).
import type { MutationScope } from '@billing/kit/mutation';
import type { CorrectionTarget } from '../domain/validate.ts';
import { type CorrectionResult, correctEvent } from './correction.ts';

/** Voids a stored event; returns it, voided, and the resulting changes. */
export function voidEvent(scope: MutationScope, input: CorrectionTarget): Promise<CorrectionResult> {
  return correctEvent(scope, input, { kind: 'void' });
}
