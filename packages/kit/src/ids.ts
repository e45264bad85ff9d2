import { monotonicFactory } from 'ulid';

const nextUlid = monotonicFactory();

/** A new ULID: sortable by creation time, unique across processes. Event ids are plain ULIDs. */
export function newUlid(): string {
  return nextUlid();
}
