// The billing periods usage is counted in (docs/usage.md): each customer's subscription periods, as the
// subscription service announces them, and UTC calendar months for times no subscription period covers (a
// customer without a subscription, or before it started). A period that has closed makes the events falling
// in it late.

/** A billing period of a customer. */
export interface BillingPeriod {
  /** Inclusive start. */
  start: Date;
  /** Exclusive end. */
  end: Date;
  /** The subscription whose period it is; empty for a calendar month. */
  subscriptionId: string;
  /** True once the period has closed: what falls in it now is late usage. */
  closed: boolean;
}

/**
 * Whether usage falling in `period` is late: the period has closed, so what comes now is announced as late usage
 * (`meter.late_usage_recorded`) for an invoice already made or being made, never in `meter.delta`; usage of an
 * open period is on time. The one statement of the rule: ingestion flags its events by it, an amendment flags its
 * event again, and a publisher pass keeps on-time and late changes apart and announces each as it says.
 */
export function isLate(period: BillingPeriod): boolean {
  return period.closed;
}

/** A known subscription period of a customer. */
export interface KnownPeriod extends BillingPeriod {
  /** The customer's external id. */
  customer: string;
}

/** The UTC calendar month containing `time`. */
function calendarMonthOf(time: Date): BillingPeriod {
  const start = new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), 1));
  const end = new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth() + 1, 1));
  return { start, end, subscriptionId: '', closed: false };
}

/**
 * Which of two subscription periods comes first where they overlap: the newer (the later start; of two starting
 * together, the greater subscription id, ids growing with creation).
 */
function precedence(a: BillingPeriod, b: BillingPeriod): number {
  return (
    b.start.getTime() - a.start.getTime() ||
    (a.subscriptionId < b.subscriptionId ? 1 : a.subscriptionId > b.subscriptionId ? -1 : 0)
  );
}

/** Finds the billing period of a customer's event time among known subscription periods. */
export class BillingCalendar {
  private readonly byCustomer = new Map<string, KnownPeriod[]>();
  private readonly months = new Map<number, BillingPeriod>();

  constructor(periods: readonly KnownPeriod[]) {
    for (const p of periods) this.byCustomer.set(p.customer, [...(this.byCustomer.get(p.customer) ?? []), p]);
    for (const list of this.byCustomer.values()) list.sort(precedence);
  }

  /**
   * The parts of `period`'s range whose events fall in it, in order: a period that takes precedence over it (a
   * subscription's over a calendar month, a newer subscription's over an older one) takes what it overlaps. The
   * calendar must know the customer's periods that end after `period` starts.
   */
  ownedRanges(customer: string, period: BillingPeriod): [Date, Date][] {
    const list = this.byCustomer.get(customer) ?? [];
    const over = period.subscriptionId === '' ? list : list.filter((p) => precedence(p, period) < 0);
    // The period as known now (its end may have moved since `period` was read: an early end).
    const known =
      list.find((p) => p.subscriptionId === period.subscriptionId && p.start.getTime() === period.start.getTime()) ??
      period;
    let owned: [number, number][] = [[known.start.getTime(), known.end.getTime()]];
    for (const p of over) {
      const [from, to] = [p.start.getTime(), p.end.getTime()];
      owned = owned.flatMap(([start, end]): [number, number][] =>
        to <= start || end <= from
          ? [[start, end]]
          : [
              ...(start < from ? [[start, from] as [number, number]] : []),
              ...(to < end ? [[to, end] as [number, number]] : []),
            ],
      );
    }
    return owned.sort((a, b) => a[0] - b[0]).map(([start, end]) => [new Date(start), new Date(end)]);
  }

  /** The billing period `time` falls in for `customer`. */
  periodOf(customer: string, time: Date): BillingPeriod {
    const t = time.getTime();
    const found = this.byCustomer.get(customer)?.find((p) => p.start.getTime() <= t && t < p.end.getTime());
    if (found) return found;
    const month = time.getUTCFullYear() * 12 + time.getUTCMonth();
    let period = this.months.get(month);
    if (!period) {
      period = calendarMonthOf(time);
      this.months.set(month, period);
    }
    return period;
  }
}
