import { monotonicFactory } from 'ulid';

const nextUlid = monotonicFactory();

/** A new ULID: sortable by creation time, unique across processes. Event ids are plain ULIDs. */
export function newUlid(): string {
  return nextUlid();
}

/** A new resource id: a short type prefix and a ULID, e.g. `cus_01JD5...`. */
export function newId(prefix: string): string {
  return `${prefix}_${nextUlid()}`;
}
