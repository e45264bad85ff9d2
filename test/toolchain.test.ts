// The Node version is written in three places that must agree: the `node` devDependency every pnpm script
// runs on, the version pnpm checks `engines` against (.npmrc), and .nvmrc for those who manage Node themselves.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '@jest/globals';

const root = join(import.meta.dirname, '..');
const read = (file: string) => readFileSync(join(root, file), 'utf8');

test('the pinned node devDependency, the engines check version and .nvmrc name the same Node', () => {
  const pinned = (JSON.parse(read('package.json')) as { devDependencies: Record<string, string> }).devDependencies.node;
  const checked = /^node-version=(.+)$/m.exec(read('.npmrc'))?.[1];
  expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
  expect(checked).toBe(pinned);
  expect(read('.nvmrc').trim()).toBe(pinned);
});
