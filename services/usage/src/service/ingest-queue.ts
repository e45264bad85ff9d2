// Group commit for ingestion. A request is written at once when a transaction slot is free; requests arriving
// while every slot is busy wait, and the next free slot writes all of them in one transaction. Under load this
// means fewer transactions, statements and commits, and each rollup bucket written once for all of them; an
// idle service adds no wait. A group that fails is retried request by request, so one request's failure is
// never another's.
import type { IngestResult } from '@billing/proto/billing/usage/v1/resources_pb';
import type { IngestBatch } from './ingest-events.ts';

/** How the queue groups requests. */
export interface IngestQueueOptions {
  /** Transactions writing at the same time. */
  concurrency: number;
  /** Most events written by one transaction (a request is never split). */
  maxGroupEvents: number;
}

/** Writes ingestion requests, grouped under load. */
export interface IngestQueue {
  /** Ingests one request's events; resolves once they are committed. */
  ingest(batch: IngestBatch): Promise<IngestResult[]>;
}

interface Waiting {
  batch: IngestBatch;
  resolve(results: IngestResult[]): void;
  reject(err: unknown): void;
}

/** Writes batches in one transaction, returning each one's results (`ingestEvents` in a transaction). */
export type WriteBatches = (batches: readonly IngestBatch[]) => Promise<IngestResult[][]>;

/** An ingestion queue writing with `writeBatches`. */
export function ingestQueue(writeBatches: WriteBatches, options: IngestQueueOptions): IngestQueue {
  const waiting: Waiting[] = [];
  let writing = 0;

  const write = (group: readonly Waiting[]) => writeBatches(group.map((w) => w.batch));

  async function run(group: Waiting[]): Promise<void> {
    try {
      const results = await write(group);
      for (const [i, w] of group.entries()) w.resolve(results[i] ?? []);
    } catch (err) {
      if (group.length === 1) group[0]?.reject(err);
      else {
        // Nothing of the group was written: each request alone, so only a failing one fails.
        await Promise.all(
          group.map((w) =>
            write([w]).then(
              ([results]) => w.resolve(results ?? []),
              (alone: unknown) => w.reject(alone),
            ),
          ),
        );
      }
    }
  }

  function next(): void {
    while (writing < options.concurrency && waiting.length > 0) {
      const group: Waiting[] = [];
      let events = 0;
      for (let w = waiting[0]; w; w = waiting[0]) {
        if (group.length > 0 && events + w.batch.events.length > options.maxGroupEvents) break;
        group.push(w);
        events += w.batch.events.length;
        waiting.shift();
      }
      writing++;
      void run(group).finally(() => {
        writing--;
        next();
      });
    }
  }

  return {
    ingest(batch) {
      return new Promise<IngestResult[]>((resolve, reject) => {
        waiting.push({ batch, resolve, reject });
        next();
      });
    },
  };
}
