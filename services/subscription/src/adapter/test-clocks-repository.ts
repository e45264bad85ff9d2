// Reads and writes of test clock rows. No business rules here: use cases in service/ decide, this persists.
import { type Em, queryBound } from '@billing/kit/db';
import type { TestClock } from '@billing/proto/billing/subscription/v1/resources_pb';
import { LockMode } from '@mikro-orm/core';
import { CustomerRow, TestClockRow, UNTRACKED } from './entities.ts';
import { fromDbTestClock } from './mapping.ts';

/** Inserts a test clock. */
export async function insertTestClock(em: Em, clock: { id: string; name: string; frozenTime: Date; now: Date }) {
  await em.insert(TestClockRow, {
    id: clock.id,
    name: clock.name,
    frozenTime: clock.frozenTime,
    createdAt: clock.now,
  });
}

/**
 * Of these clocks, those whose row another transaction holds: an advance (or a deletion) is under way. A lock
 * probe in SQL, since it runs outside a transaction too (reads), where the ORM refuses a lock mode: the rows
 * `skip locked` leaves out are the busy ones, and autocommit releases the others at once.
 */
async function busyClocks(em: Em, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const free = await queryBound<{ id: string }>(
    em,
    'select id from test_clock where id = any($1::text[]) for update skip locked',
    [ids],
  );
  const freeIds = new Set(free.map((r) => r.id));
  return new Set(ids.filter((id) => !freeIds.has(id)));
}

/** A test clock, with whether an advance holds it. */
export async function findTestClock(em: Em, id: string): Promise<TestClock | undefined> {
  const row = await em.findOne(TestClockRow, { id }, UNTRACKED);
  if (!row) return undefined;
  return fromDbTestClock(row, (await busyClocks(em, [row.id])).has(row.id));
}

/** A test clock with its row locked, without waiting: `busy` when another transaction holds it. */
export async function lockTestClock(em: Em, id: string): Promise<TestClock | 'busy' | undefined> {
  try {
    const row = await em.findOne(TestClockRow, { id }, { ...UNTRACKED, lockMode: LockMode.PESSIMISTIC_WRITE_OR_FAIL });
    return row ? fromDbTestClock(row, false) : undefined;
  } catch (err) {
    // 55P03 lock_not_available: `for update nowait` found the row locked.
    if ((err as { code?: unknown }).code === '55P03') return 'busy';
    throw err;
  }
}

/** A page of test clocks in creation order. */
export async function listTestClocks(em: Em, page: { size: number; after: string | undefined }) {
  const rows = await em.find(
    TestClockRow,
    { seq: { $gt: page.after ?? '0' } },
    { ...UNTRACKED, orderBy: { seq: 'asc' }, limit: page.size + 1 },
  );
  const busy = await busyClocks(
    em,
    rows.map((r) => r.id),
  );
  return rows.map((r) => ({ seq: r.seq, clock: fromDbTestClock(r, busy.has(r.id)) }));
}

/** Moves a test clock's time. */
export async function setTestClockTime(em: Em, id: string, time: Date) {
  await em.nativeUpdate(TestClockRow, { id }, { frozenTime: time });
}

/** Deletes a test clock with its customers and their subscriptions (the schema cascades); returns the customer ids. */
export async function deleteTestClock(em: Em, id: string): Promise<string[]> {
  const customers = await em.find(CustomerRow, { testClockId: id }, { ...UNTRACKED, orderBy: { seq: 'asc' } });
  await em.nativeDelete(TestClockRow, { id });
  return customers.map((c) => c.id);
}

/** The time on a test clock, or `realNow` for customers on real time. */
export async function clockTime(em: Em, testClockId: string, realNow: Date): Promise<Date> {
  if (testClockId === '') return realNow;
  const row = await em.findOne(TestClockRow, { id: testClockId }, UNTRACKED);
  return row ? row.frozenTime : realNow;
}
