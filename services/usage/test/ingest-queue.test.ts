// Group commit of ingestion requests: a pure unit test of the queue, with a writer that records each write and
// finishes it when the test says so.

import { UnavailableError } from '@billing/kit/errors';
import {
  type IngestResult,
  IngestResultSchema,
  IngestStatus,
  UsageEventSchema,
} from '@billing/proto/billing/usage/v1/resources_pb';
import { create } from '@bufbuild/protobuf';
import { describe, expect, test } from '@jest/globals';
import { fromProtoUsageEvent } from '../src/rpc/convert.ts';
import type { IngestBatch } from '../src/service/ingest-events.ts';
import { ingestQueue, type WriteBatches } from '../src/service/ingest-queue.ts';

/** A request of `size` events whose ids start with `name`. */
function request(name: string, size = 1): IngestBatch {
  return {
    events: Array.from({ length: size }, (_, i) =>
      fromProtoUsageEvent(create(UsageEventSchema, { id: `${name}-${i}` })),
    ),
    offset: 0,
  };
}

const nameOf = (batch: IngestBatch) => batch.events[0]?.id.split('-')[0] ?? '';

/** A writer that holds every write until `finish()`, and fails a write holding a request named `bad`. */
function heldWriter() {
  const writes: string[][] = [];
  const held: (() => void)[] = [];
  const write: WriteBatches = async (batches) => {
    writes.push(batches.map(nameOf));
    await new Promise<void>((resolve) => held.push(resolve));
    if (batches.some((b) => nameOf(b) === 'bad')) throw new Error('the database refused the write');
    return batches.map((b) =>
      b.events.map((e, index) => create(IngestResultSchema, { index, id: e.id, status: IngestStatus.ACCEPTED })),
    );
  };
  const finish = async () => {
    for (const release of held.splice(0)) release();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { writes, write, finish };
}

const ids = (results: IngestResult[]) => results.map((r) => r.id);
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('the ingestion queue', () => {
  test('an idle queue writes a request at once, alone', async () => {
    const writer = heldWriter();
    const queue = ingestQueue(writer.write, { concurrency: 1, maxGroupRequests: 10 });
    const a = queue.ingest(request('a', 2));
    await settled();
    expect(writer.writes).toEqual([['a']]);
    await writer.finish();
    expect(ids(await a)).toEqual(['a-0', 'a-1']);
  });

  test('requests arriving while every slot writes are written together, each answered with its own results', async () => {
    const writer = heldWriter();
    const queue = ingestQueue(writer.write, { concurrency: 2, maxGroupRequests: 10 });
    const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((name) => queue.ingest(request(name, 2)));
    await settled();
    expect(writer.writes).toEqual([['a'], ['b']]);
    await writer.finish();
    expect(writer.writes).toEqual([['a'], ['b'], ['c', 'd', 'e']]);
    await writer.finish();
    expect(await Promise.all([a, b, c, d, e].map(async (p) => ids((await p) ?? [])))).toEqual([
      ['a-0', 'a-1'],
      ['b-0', 'b-1'],
      ['c-0', 'c-1'],
      ['d-0', 'd-1'],
      ['e-0', 'e-1'],
    ]);
  });

  test('a group holds at most maxGroupRequests requests, in arrival order', async () => {
    const writer = heldWriter();
    const queue = ingestQueue(writer.write, { concurrency: 1, maxGroupRequests: 2 });
    const all = ['a', 'b', 'c', 'd', 'e'].map((name) => queue.ingest(request(name)));
    await settled();
    for (let i = 0; i < 3; i++) await writer.finish();
    await Promise.all(all);
    expect(writer.writes).toEqual([['a'], ['b', 'c'], ['d', 'e']]);
  });

  test('a failed group is retried request by request, one after the other in its slot: only the failing one fails', async () => {
    const writer = heldWriter();
    const queue = ingestQueue(writer.write, { concurrency: 1, maxGroupRequests: 10 });
    const first = queue.ingest(request('a'));
    const [b, bad, c] = ['b', 'bad', 'c'].map((name) => queue.ingest(request(name)));
    const refusal = bad?.catch((err: unknown) => err);
    await settled();
    await writer.finish();
    await writer.finish();
    // The group failed: b is retried alone, and nothing else is written until it is done.
    const later = queue.ingest(request('d'));
    await settled();
    expect(writer.writes).toEqual([['a'], ['b', 'bad', 'c'], ['b']]);
    for (let i = 0; i < 3; i++) await writer.finish();
    expect(writer.writes).toEqual([['a'], ['b', 'bad', 'c'], ['b'], ['bad'], ['c'], ['d']]);
    await writer.finish();
    expect(ids(await first)).toEqual(['a-0']);
    expect(ids((await b) ?? [])).toEqual(['b-0']);
    expect(ids((await c) ?? [])).toEqual(['c-0']);
    expect(ids(await later)).toEqual(['d-0']);
    expect(await refusal).toEqual(new Error('the database refused the write'));
  });

  test('when the database is unavailable, every request of the group fails at once, without retries', async () => {
    const writes: number[] = [];
    const queue = ingestQueue(
      async (batches) => {
        writes.push(batches.length);
        throw new UnavailableError('the database is unavailable');
      },
      { concurrency: 1, maxGroupRequests: 10 },
    );
    const all = ['a', 'b', 'c'].map((name) => queue.ingest(request(name)).catch((err: unknown) => err));
    const outcomes = await Promise.all(all);
    expect(outcomes.every((err) => err instanceof UnavailableError)).toBe(true);
    expect(writes).toEqual([1, 2]);
  });

  test('a writer answering fewer results than events fails the request instead of answering it empty', async () => {
    const queue = ingestQueue(async (batches) => batches.map(() => []), { concurrency: 1, maxGroupRequests: 10 });
    await expect(queue.ingest(request('a', 2))).rejects.toThrow('ingestion answered 0 results for 2 events');
    // A result missing inside the answer (a hole in an answer of the right length) fails it too.
    const holed = ingestQueue(async (batches) => batches.map(() => new Array(2)), {
      concurrency: 1,
      maxGroupRequests: 10,
    });
    await expect(holed.ingest(request('b', 2))).rejects.toThrow('ingestion answered 0 results for 2 events');
  });
});
