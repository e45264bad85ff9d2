// Group commit for ingestion. A request is written at once when a transaction slot is free; requests arriving
// while every slot is busy wait, and the next free slot writes several of them in one transaction. Under load
// this means fewer transactions, statements and commits, and each rollup bucket written once for all of them;
// an idle service adds no wait. A group that fails is retried request by request in its slot, so one request's
// failure is never another's; when the database is unavailable, every request of the group fails at once.

import { withoutCallDeadline } from '@billing/kit/deadline';
import { UnavailableError } from '@billing/kit/errors';
import { withTraceparent } from '@billing/kit/trace';
import type { IngestResult } from '@billing/proto/billing/usage/v1/resources_pb';
import type { IngestBatch } from './ingest-events.ts';

/** How the queue groups requests. */
export interface IngestQueueOptions {
  /** Transactions writing at the same time. */
  concurrency: number;
  /** Most requests written by one transaction (each is at most 1,000 events and the server's message size). */
  maxGroupRequests: number;
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

  async function write(group: readonly Waiting[]): Promise<void> {
    const results = await writeBatches(group.map((w) => w.batch));
    for (const [i, w] of group.entries()) {
      // One result per event, at its position (results are filled in by position: a hole is a missing one).
      const answer = results[i] ?? [];
      const answered = Array.from(answer).filter(Boolean).length;
      if (answer.length === w.batch.events.length && answered === answer.length) w.resolve(answer);
      else w.reject(new Error(`ingestion answered ${answered} results for ${w.batch.events.length} events`));
    }
  }

  async function run(group: Waiting[]): Promise<void> {
    try {
      await write(group);
    } catch (err) {
      if (group.length === 1 || err instanceof UnavailableError) {
        for (const w of group) w.reject(err);
        return;
      }
      // Nothing of the group was written: each request alone, one after the other, so only a failing one fails.
      for (const w of group) await write([w]).catch((alone: unknown) => w.reject(alone));
    }
  }

  function next(): void {
    while (writing < options.concurrency && waiting.length > 0) {
      const group = waiting.splice(0, options.maxGroupRequests);
      writing++;
      // A group is several requests' work: it runs in none of their trace contexts, and under none of their
      // deadlines (one caller's deadline must not cancel the others' events).
      void withoutCallDeadline(() => withTraceparent(undefined, () => run(group))).finally(() => {
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
