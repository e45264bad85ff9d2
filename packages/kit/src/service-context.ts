// What the runtime hands a service's wiring: the handlers, consumers and background jobs of a service are
// built over it. It lives apart from the runtime so that what the runtime starts (the admin service, mutations)
// can name it without importing the runtime.
import type { Logger } from 'pino';
import type { EventBus } from './bus.ts';
import type { Clock } from './clock.ts';
import type { Database } from './db.ts';
import type { OutboxRelay } from './outbox.ts';

/** What a service's wiring receives to build its handlers and consumers. */
export interface ServiceContext {
  /** The service's database. */
  db: Database;
  /** The bus (NATS or in-process). */
  bus: EventBus;
  /** Wakes the outbox relay; call after committing events. */
  relay: OutboxRelay;
  /** Logger. */
  logger: Logger;
  /** Clock. */
  clock: Clock;
}
