// Reads and writes of customer rows. No business rules here: use cases in service/ decide, this persists.
import { type Em, queryBound } from '@billing/kit/db';
import type { Customer } from '@billing/proto/billing/subscription/v1/resources_pb';
import type { JsonValue } from '@bufbuild/protobuf';
import { type FilterQuery, type InferEntity, LockMode, type Subquery } from '@mikro-orm/core';
import { CustomerRow, UNTRACKED } from './entities.ts';
import { fromDbCustomer, toDbCustomer } from './mapping.ts';

/** Inserts a customer; false when its external id is taken (even by a concurrent insert). */
export async function insertCustomer(em: Em, customer: Customer): Promise<boolean> {
  // An insert that does nothing on a taken external id, then reads the row holding it: another transaction
  // inserting the same external id makes this one wait for it, then see its row.
  const row = await em.upsert(
    CustomerRow,
    { id: customer.id, ...toDbCustomer(customer) },
    { ...UNTRACKED, onConflictFields: ['externalId'], onConflictAction: 'ignore' },
  );
  return row.id === customer.id;
}

/** Replaces a customer's row. */
export async function saveCustomer(em: Em, customer: Customer) {
  await em.nativeUpdate(CustomerRow, { id: customer.id }, toDbCustomer(customer));
}

/** A customer by id (with its row locked when `lock`). */
export async function findCustomer(em: Em, id: string, lock = false): Promise<Customer | undefined> {
  const row = await em.findOne(
    CustomerRow,
    { id },
    lock ? { ...UNTRACKED, lockMode: LockMode.PESSIMISTIC_WRITE } : UNTRACKED,
  );
  return row ? fromDbCustomer(row) : undefined;
}

/** A customer by external id. */
export async function findCustomerByExternalId(em: Em, externalId: string): Promise<Customer | undefined> {
  const row = await em.findOne(CustomerRow, { externalId }, UNTRACKED);
  return row ? fromDbCustomer(row) : undefined;
}

/** Filters of a customer list; empty values do not filter. */
export interface CustomerFilters {
  /** Children of this customer only. */
  parentId: string;
  /** Roots only. */
  rootsOnly: boolean;
  /** Customers of this test clock only. */
  testClockId: string;
  /** These external ids only. */
  externalIds: readonly string[];
  /** Name or external id containing this text, whatever its case. */
  query: string;
}

/** A LIKE pattern matching `text` anywhere, its own wildcards taken literally. */
function containing(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** A page of customers in creation order. */
export async function listCustomers(
  em: Em,
  filters: CustomerFilters,
  page: { size: number; after: string | undefined },
): Promise<{ seq: string; customer: Customer }[]> {
  const where: FilterQuery<InferEntity<typeof CustomerRow>>[] = [{ seq: { $gt: page.after ?? '0' } }];
  if (filters.parentId) where.push({ parentId: filters.parentId });
  if (filters.rootsOnly) where.push({ parentId: null });
  if (filters.testClockId) where.push({ testClockId: filters.testClockId });
  if (filters.externalIds.length > 0) where.push({ externalId: { $in: [...filters.externalIds] } });
  if (filters.query) {
    const pattern = containing(filters.query);
    where.push({ $or: [{ name: { $ilike: pattern } }, { externalId: { $ilike: pattern } }] });
  }
  const rows = await em.find(
    CustomerRow,
    { $and: where },
    { ...UNTRACKED, orderBy: { seq: 'asc' }, limit: page.size + 1 },
  );
  return rows.map((r) => ({ seq: r.seq, customer: fromDbCustomer(r) }));
}

/**
 * The ids of the customers a payer pays for, itself included, as a subquery of the statement that uses them: a
 * payer may pay for tens of thousands of customers, which are never read into the service.
 */
export function customersPaidBy(em: Em, payerId: string): Subquery {
  return em
    .createQueryBuilder(CustomerRow, 'payer')
    .select('id')
    .where({ $or: [{ id: payerId }, { body: { payerId } }] });
}

/**
 * The subtree under a customer (itself first), breadth first, with depths relative to it. A recursive query,
 * which the ORM cannot say: one statement however deep the tree.
 */
export async function subtree(em: Em, id: string): Promise<{ customer: Customer; depth: number }[]> {
  const rows = await queryBound<{ body: JsonValue; depth: number }>(
    em,
    `with recursive down (id, depth) as (
       select id, 0 from customer where id = $1
       union all
       select c.id, down.depth + 1 from customer c join down on c.parent_id = down.id
     )
     select c.body, down.depth from down join customer c on c.id = down.id order by down.depth, c.seq`,
    [id],
  );
  return rows.map((r) => ({ customer: fromDbCustomer(r), depth: r.depth }));
}

/**
 * Takes the lock that serialises tree moves until the transaction ends, so that two concurrent moves cannot
 * build a cycle between them. An advisory lock, which the ORM cannot take.
 */
export async function lockCustomerTrees(em: Em): Promise<void> {
  await queryBound(em, "select pg_advisory_xact_lock(hashtext('customer-tree'))", []);
}
