// The production bus: NATS JetStream. One stream per producing service owning `[prefix.]billing.<service>.>`,
// durable pull consumers with explicit acks, Nats-Msg-Id = event id so that JetStream drops republished
// events inside its duplicate window (consumers drop the rest by event id).
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { ConsumeOptions, EventBus, Subscription } from './bus.ts';
import { envelopeFromHeaders, envelopeToHeaders, subjectMatches } from './events.ts';

/** Options of the NATS bus. */
export interface NatsBusOptions {
  /** Server URLs, e.g. `nats://127.0.0.1:4222`. */
  servers: string[];
  /** Prefix put in front of every subject and stream name, to isolate tests and environments. */
  subjectPrefix?: string;
  /** Connection name shown by the server. */
  name: string;
  /** How long JetStream waits for an ack before redelivering, in ms. */
  ackWaitMs?: number;
  /** Timeout of one publish, in ms. */
  publishTimeoutMs?: number;
  /** Logger. */
  logger: Logger;
}

/** Connects to NATS and returns a JetStream-backed EventBus; reconnects forever on its own. */
export async function connectNatsBus(options: NatsBusOptions): Promise<EventBus> {
  const prefix = options.subjectPrefix ? `${options.subjectPrefix}.` : '';
  const streamPrefix = options.subjectPrefix ? `${options.subjectPrefix.replace(/[^A-Za-z0-9_-]/g, '_')}_` : '';
  const ackWaitMs = options.ackWaitMs ?? 30_000;
  const nc: NatsConnection = await connect({
    servers: options.servers,
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: false,
  });
  const js: JetStreamClient = jetstream(nc);
  const jsm: JetStreamManager = await jetstreamManager(nc);
  const subscriptions = new Set<Subscription>();
  const streamName = (service: string) => `${streamPrefix}BILLING_${service.toUpperCase()}`;

  (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect') {
        options.logger.warn({ nats: status.type }, 'NATS connection status changed');
      }
    }
  })().catch(() => {});

  const ensureStream = async (service: string) => {
    const name = streamName(service);
    const config = { name, subjects: [`${prefix}billing.${service}.>`], duplicate_window: 120_000_000_000 };
    try {
      await jsm.streams.info(name);
      await jsm.streams.update(name, config);
    } catch {
      await jsm.streams.add(config);
    }
  };

  return {
    survivesRestart: true,
    ensureStream,

    async publish(message) {
      const h = headers();
      for (const [name, value] of Object.entries(envelopeToHeaders(message.envelope))) h.set(name, value);
      const ack = await js.publish(`${prefix}${message.subject}`, message.payload, {
        msgID: message.envelope.eventId,
        headers: h,
        timeout: options.publishTimeoutMs ?? 5_000,
      });
      return { duplicate: ack.duplicate };
    },

    async consume(opts: ConsumeOptions) {
      const stream = streamName(opts.stream);
      await ensureStream(opts.stream);
      const config: Partial<ConsumerConfig> = {
        durable_name: opts.durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: ackWaitMs * 1_000_000,
        // One message in flight per durable, whichever replica holds it: with several replicas, messages are
        // still handled one at a time in stream order, and a message asked to be redelivered comes before any
        // after it (as on the in-process bus).
        max_ack_pending: 1,
        // nats-server 2.9 (Debian's) knows one filter subject per consumer: with several, the consumer
        // reads the whole stream and skips the rest here.
        filter_subject:
          opts.subjects.length === 1 ? `${prefix}${opts.subjects[0]}` : `${prefix}billing.${opts.stream}.>`,
      };
      try {
        await jsm.consumers.info(stream, opts.durable);
        await jsm.consumers.update(stream, opts.durable, config);
      } catch {
        await jsm.consumers.add(stream, config);
      }
      const consumer = await js.consumers.get(stream, opts.durable);
      const messages = await consumer.consume({ max_messages: 16 });
      const loop = (async () => {
        for await (const m of messages) {
          const subject = prefix ? m.subject.slice(prefix.length) : m.subject;
          if (!opts.subjects.some((filter) => subjectMatches(filter, subject))) {
            m.ack();
            continue;
          }
          let envelope: ReturnType<typeof envelopeFromHeaders>;
          try {
            envelope = envelopeFromHeaders((name) => m.headers?.get(name) || undefined);
          } catch (err) {
            // A message without our envelope cannot be processed by anyone; acknowledge and say so.
            options.logger.error({ err, subject }, 'dropping a message without a valid envelope');
            m.term();
            continue;
          }
          try {
            await opts.handle({
              message: { subject, envelope, payload: m.data },
              deliveryCount: m.info.deliveryCount,
              working: () => m.working(),
            });
            m.ack();
          } catch {
            m.nak(200);
          }
        }
      })();
      const subscription: Subscription = {
        async stop() {
          await messages.close();
          await loop;
          subscriptions.delete(subscription);
        },
      };
      subscriptions.add(subscription);
      return subscription;
    },

    async close() {
      await Promise.all([...subscriptions].map((s) => s.stop()));
      await nc.drain().catch(() => nc.close());
    },
  };
}
