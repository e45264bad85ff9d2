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

/** Finds the billing period of a customer's event time among known subscription periods. */
export class BillingCalendar {
  private readonly byCustomer = new Map<string, KnownPeriod[]>();
  private readonly months = new Map<number, BillingPeriod>();

  constructor(periods: readonly KnownPeriod[]) {
    for (const p of periods) this.byCustomer.set(p.customer, [...(this.byCustomer.get(p.customer) ?? []), p]);
    // The latest start first: when two subscriptions' periods overlap, the newer one counts (of two starting
    // together, the greater id: ids grow with creation).
    for (const list of this.byCustomer.values()) {
      list.sort(
        (a, b) =>
          b.start.getTime() - a.start.getTime() ||
          (a.subscriptionId < b.subscriptionId ? 1 : a.subscriptionId > b.subscriptionId ? -1 : 0),
      );
    }
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
