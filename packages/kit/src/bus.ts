// The transport of events between services: NATS JetStream in production, an in-process bus in the
// all-in-one mode. Both keep the same guarantees (see docs/events.md); one contract suite tests both.
import type { BusMessage } from './events.ts';

/** One delivery of a message to a durable consumer. */
export interface Delivery {
  /** The message. */
  message: BusMessage;
  /** 1 for the first delivery, more after a crash or an expired acknowledgement. */
  deliveryCount: number;
  /** Tells the bus the handler is still working, so it does not redeliver yet. */
  working(): void;
}

/** A durable consumer's subscription. */
export interface Subscription {
  /** Stops delivering; the current handler call finishes first. */
  stop(): Promise<void>;
}

/** Options of a durable consumer. */
export interface ConsumeOptions {
  /** The producing service whose stream is read. */
  stream: string;
  /** Durable name, `<consumer-service>-<purpose>`. */
  durable: string;
  /** Logical subjects (wildcards allowed) to receive. */
  subjects: readonly string[];
  /**
   * Called once per delivery, one at a time, in stream order. Resolving acknowledges; throwing asks for a
   * redelivery later (handlers that want to retry in place do so before returning).
   */
  handle(delivery: Delivery): Promise<void>;
}

/** Publishes and delivers events. */
export interface EventBus {
  /**
   * Whether published messages survive a restart of this process (JetStream: yes; the in-process bus: no,
   * so producers replay their outbox into it at start).
   */
  readonly survivesRestart: boolean;
  /** Creates (idempotently) the stream owning `billing.<service>.>`. */
  ensureStream(service: string): Promise<void>;
  /** Publishes durably; a message whose event id was seen before is reported as a duplicate and dropped. */
  publish(message: BusMessage): Promise<{ duplicate: boolean }>;
  /** Starts (creating it idempotently) a durable consumer. */
  consume(options: ConsumeOptions): Promise<Subscription>;
  /** Stops every subscription and closes the connection. */
  close(): Promise<void>;
}
