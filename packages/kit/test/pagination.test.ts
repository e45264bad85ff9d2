// Page tokens: bound to the filters they were issued for, whatever those filters hold.
import { expect, test } from '@jest/globals';
import { readPageRequest, toPage } from '../src/pagination.ts';

const rows = ['a', 'b', 'c'];

test('a token issued for filters with 64-bit integers reads back with the same filters', () => {
  const filters = { customer: 'acme', range: { startTime: { seconds: 1_764_000_000n, nanos: 0 } } };
  const { items, nextPageToken } = toPage(rows, { size: 2, after: undefined }, (r) => r, filters);
  expect(items).toEqual(['a', 'b']);
  expect(readPageRequest(2, nextPageToken, filters)).toEqual({ size: 2, after: 'b' });
});

test('a token is refused with other filters, naming page_token', () => {
  const issuedFor = { range: { startTime: { seconds: 1n } } };
  const { nextPageToken } = toPage(rows, { size: 2, after: undefined }, (r) => r, issuedFor);
  expect(() => readPageRequest(2, nextPageToken, { range: { startTime: { seconds: 2n } } })).toThrow(
    expect.objectContaining({ violations: [expect.objectContaining({ field: 'page_token' })] }),
  );
});
