// Listing catalog objects by key, the order of every catalog list but plan versions'.
import { listPage, type PageParameters } from '@billing/kit/pagination';

/** A list request of objects that can be archived: its page, and whether archived ones are included. */
export interface ArchivableListInput extends PageParameters {
  /** Include archived objects. */
  includeArchived: boolean;
}

/**
 * A page of objects ordered by key, archived ones only when asked for; `fetch` reads the rows after a key
 * (one more than the page's size, to tell a next page).
 */
export function listByKey<T extends { key: string }>(
  input: ArchivableListInput,
  fetch: (page: { size: number; after: string | undefined; includeArchived: boolean }) => Promise<T[]>,
) {
  const { includeArchived } = input;
  return listPage(
    input,
    { includeArchived },
    (page) => fetch({ ...page, includeArchived }),
    (row) => row.key,
  );
}
