// Aggregate ids of the usage events: one aggregate per customer and meter (deltas, late usage) and one per stored event
// (corrections). Their parts that may hold any character come last, and the kinds differ by prefix, so no
// two aggregates share an id: an event id equal to a meter key once numbered both in one sequence.

/** The aggregate of a customer's usage of a meter (meter keys hold no "/"). */
export const meterUsageAggregate = (customer: string, meterKey: string) => `meter/${meterKey}/${customer}`;

/** The aggregate of a stored event (its id, printable ASCII, encoded so that it holds no "/"). */
export const usageEventAggregate = (customer: string, eventId: string) =>
  `event/${encodeURIComponent(eventId)}/${customer}`;
