// The rule of text PostgreSQL can store, which the request guard and the usage service's own event checks share.
import { expect, test } from '@jest/globals';
import { isStorableText } from '../src/text.ts';

test('text with a NUL character, or a UTF-16 surrogate without its pair, cannot be stored; a pair can', () => {
  expect(
    ['', 'acme', 'build.finished', 'emoji \ud83d\ude00', 'a backslash then u0000: \\u0000'].map(isStorableText),
  ).toEqual([true, true, true, true, true]);
  expect(['nul\u0000', '\u0000', 'high \ud83d', 'low \ude00 first', '\ude00\ud83d'].map(isStorableText)).toEqual([
    false,
    false,
    false,
    false,
    false,
  ]);
});
