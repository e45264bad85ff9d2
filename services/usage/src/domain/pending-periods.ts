// What a delta publisher pass has to announce, merged per (customer, meter, billing period): the increments the
// rollup log's fold returns and the pending rows of corrections and recomputes. How they merge is a billing rule:
// what a period got while it was open (on time) and what came after it closed (late) stay apart, so on-time
// usage is never billed again as late usage; a correction's recompute stays apart from both, as the correction
// announced its change itself.
import { mergeIncrements, type PeriodIncrement } from './period-value.ts';
import { type BillingPeriod, isLate } from './periods.ts';
import { MAX_LATE_IDS } from './rollup.ts';

/** What is pending for one (customer, meter, billing period): an increment, or a recompute. */
export interface PendingChange {
  /** The customer's external id. */
  customer: string;
  /** The meter. */
  meterKey: string;
  /** The billing period. */
  period: BillingPeriod;
  /** Ingestion time of the last batch. */
  lastIngest: Date;
  /** Everything added since the last publication. */
  increment: PeriodIncrement;
  /** The late events among them (at most MAX_LATE_IDS are kept). */
  lateEventIds: string[];
  /** True for a recompute a correction asked for (the correction announced its change itself). */
  correction: boolean;
}

/** Pending changes merged per (customer, meter, period) as they come, so a pass holds one entry per period. */
export class PendingPeriods {
  private readonly merged = new Map<string, PendingChange>();

  /** The periods merged so far. */
  get size(): number {
    return this.merged.size;
  }

  /** Merges `changes` in (it takes them over: the merged entries are the first of each period, updated). */
  add(changes: readonly PendingChange[]): void {
    const merged = this.merged;
    for (const change of changes) {
      // What a period got while open and what came late stay apart, except for recomputes (unique counts): a
      // recompute reads the whole period, late events included, so its change is one, late once the period closed.
      const whole = change.increment.recompute && !change.correction;
      const key = JSON.stringify([
        change.customer,
        change.meterKey,
        change.period.start.getTime(),
        change.period.subscriptionId,
        whole || isLate(change.period),
        change.correction,
      ]);
      const seen = merged.get(key);
      if (!seen) {
        if (change.lateEventIds.length > MAX_LATE_IDS) change.lateEventIds = change.lateEventIds.slice(0, MAX_LATE_IDS);
        merged.set(key, change);
        continue;
      }
      seen.increment = mergeIncrements(seen.increment, change.increment);
      if (change.lastIngest > seen.lastIngest) seen.lastIngest = change.lastIngest;
      seen.period.closed ||= change.period.closed;
      seen.lateEventIds.push(...change.lateEventIds.slice(0, MAX_LATE_IDS - seen.lateEventIds.length));
    }
  }

  /**
   * The merged periods: per period, what ingestion added while it was open, then what came late, then what a
   * correction recomputes.
   */
  list(): PendingChange[] {
    const rank = (p: PendingChange) => (p.correction ? 2 : isLate(p.period) ? 1 : 0);
    return [...this.merged.values()].sort((a, b) => rank(a) - rank(b));
  }
}
