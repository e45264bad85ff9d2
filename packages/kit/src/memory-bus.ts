// The in-process bus of the all-in-one mode: every service runs in one process, so streams are arrays and
// consumers are loops over them. It keeps JetStream's guarantees that matter to the kit: publication is
// deduplicated by event id, each durable consumer sees its stream in order, one message at a time, and a
// message whose handler throws is delivered again until it is acknowledged.
import type { ConsumeOptions, EventBus, Subscription } from './bus.ts';
import { type BusMessage, subjectMatches } from './events.ts';

interface Stream {
  messages: BusMessage[];
  seen: Set<string>;
  wake: Set<() => void>;
}

interface DurableState {
  position: number;
  running: boolean;
}

/** Options of the in-process bus. */
export interface MemoryBusOptions {
  /** Delay before a failed delivery is retried, in ms. */
  redeliveryDelayMs?: number;
}

/** An in-process EventBus for the all-in-one mode and for unit tests. */
export function createMemoryBus(options: MemoryBusOptions = {}): EventBus {
  const redeliveryDelayMs = options.redeliveryDelayMs ?? 200;
  const streams = new Map<string, Stream>();
  const durables = new Map<string, DurableState>();
  const subscriptions = new Set<Subscription>();

  const streamOf = (service: string): Stream => {
    let stream = streams.get(service);
    if (!stream) {
      stream = { messages: [], seen: new Set(), wake: new Set() };
      streams.set(service, stream);
    }
    return stream;
  };

  const serviceOf = (subject: string): string => {
    const service = subject.split('.')[1];
    if (!service) throw new Error(`subject ${subject} names no service`);
    return service;
  };

  return {
    survivesRestart: false,

    async ensureStream(service) {
      streamOf(service);
    },

    async publish(message) {
      const stream = streamOf(serviceOf(message.subject));
      if (stream.seen.has(message.envelope.eventId)) return { duplicate: true };
      stream.seen.add(message.envelope.eventId);
      stream.messages.push(message);
      for (const wake of stream.wake) wake();
      return { duplicate: false };
    },

    async consume(opts: ConsumeOptions) {
      const stream = streamOf(opts.stream);
      const key = `${opts.stream}/${opts.durable}`;
      let state = durables.get(key);
      if (!state) {
        state = { position: 0, running: false };
        durables.set(key, state);
      }
      if (state.running) throw new Error(`durable consumer ${key} is already running in this process`);
      state.running = true;
      const durable = state;
      let stopped = false;
      let wakeUp: (() => void) | undefined;
      const sleep = (ms?: number) =>
        new Promise<void>((resolve) => {
          const done = () => {
            stream.wake.delete(done);
            if (timer) clearTimeout(timer);
            wakeUp = undefined;
            resolve();
          };
          const timer = ms === undefined ? undefined : setTimeout(done, ms);
          if (ms === undefined) stream.wake.add(done);
          wakeUp = done;
        });

      const loop = (async () => {
        let deliveryCount = 1;
        while (!stopped) {
          const message = stream.messages[durable.position];
          if (!message) {
            await sleep();
            continue;
          }
          if (!opts.subjects.some((filter) => subjectMatches(filter, message.subject))) {
            durable.position++;
            continue;
          }
          try {
            await opts.handle({ message, deliveryCount, working: () => {} });
            durable.position++;
            deliveryCount = 1;
          } catch {
            deliveryCount++;
            await sleep(redeliveryDelayMs);
          }
        }
      })();

      const subscription: Subscription = {
        async stop() {
          stopped = true;
          wakeUp?.();
          await loop;
          durable.running = false;
          subscriptions.delete(subscription);
        },
      };
      subscriptions.add(subscription);
      return subscription;
    },

    async close() {
      await Promise.all([...subscriptions].map((s) => s.stop()));
    },
  };
}
