// Cursor pagination (AIP-158): page_size / page_token / next_page_token. A token is opaque to callers: the
// sort key of the last row returned, plus a hash of the filters so a token cannot be reused with others.
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from './errors.ts';

/** Page size used when the caller gives none. */
export const DEFAULT_PAGE_SIZE = 50;
/** Largest page size accepted. */
export const MAX_PAGE_SIZE = 500;

/** The paging fields of a list request, as sent: `page_size` and `page_token`. */
export interface PageParameters {
  /** Rows to return; 0 means the default. */
  pageSize: number;
  /** The previous page's next_page_token; empty for the first page. */
  pageToken: string;
}

/** A validated page request. */
export interface PageRequest {
  /** Rows to return. */
  size: number;
  /** Sort key after which the page starts; undefined for the first page. */
  after: string | undefined;
}

// Filters may hold protobuf messages, whose 64-bit integers are bigints that JSON cannot write as numbers.
const bigintsAsText = (_key: string, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value);

function filterHash(filters: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(filters ?? null, bigintsAsText))
    .digest('base64url')
    .slice(0, 12);
}

/** Validates page_size and page_token; `filters` are the list's other parameters. */
export function readPageRequest(pageSize: number, pageToken: string, filters?: unknown): PageRequest {
  if (!Number.isInteger(pageSize) || pageSize < 0 || pageSize > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError(`page_size must be between 0 and ${MAX_PAGE_SIZE}`, [
      { field: 'page_size', description: `must be between 0 and ${MAX_PAGE_SIZE}` },
    ]);
  }
  const size = pageSize === 0 ? DEFAULT_PAGE_SIZE : pageSize;
  if (!pageToken) return { size, after: undefined };
  try {
    const decoded = JSON.parse(Buffer.from(pageToken, 'base64url').toString('utf8')) as { a?: unknown; f?: unknown };
    if (typeof decoded.a !== 'string' || decoded.f !== filterHash(filters)) throw new Error('mismatch');
    return { size, after: decoded.a };
  } catch {
    throw new InvalidArgumentError('page_token is not valid for this request', [
      { field: 'page_token', description: 'not a token returned by this list with the same filters' },
    ]);
  }
}

/**
 * Builds a page from `size + 1` fetched rows: returns the rows to send and the next token (empty at the end).
 */
export function toPage<Row>(
  rows: readonly Row[],
  request: PageRequest,
  sortKey: (row: Row) => string,
  filters?: unknown,
): { items: Row[]; nextPageToken: string } {
  if (rows.length <= request.size) return { items: [...rows], nextPageToken: '' };
  const items = rows.slice(0, request.size);
  const last = items[items.length - 1];
  if (last === undefined) return { items, nextPageToken: '' };
  const token = Buffer.from(JSON.stringify({ a: sortKey(last), f: filterHash(filters) })).toString('base64url');
  return { items, nextPageToken: token };
}

/**
 * One page of a keyset-paged list: validates page_size and page_token against `filters`, fetches `size + 1`
 * rows after the cursor with `fetch`, and returns the page with its next token.
 */
export async function listPage<Row>(
  request: PageParameters,
  filters: unknown,
  fetch: (page: PageRequest) => Promise<readonly Row[]>,
  sortKey: (row: Row) => string,
): Promise<{ items: Row[]; nextPageToken: string }> {
  const page = readPageRequest(request.pageSize, request.pageToken, filters);
  return toPage(await fetch(page), page, sortKey, filters);
}
