// The boundary check of `pnpm lint` refuses a service's source that imports another service, and lets
// through what services may share.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, expect, test } from '@jest/globals';

const script = join(import.meta.dirname, '..', 'scripts', 'check-boundaries.ts');
let workspace = '';

function write(path: string, text: string) {
  mkdirSync(dirname(join(workspace, path)), { recursive: true });
  writeFileSync(join(workspace, path), text);
}

function checkWorkspace(): { ok: boolean; output: string } {
  try {
    execFileSync(process.execPath, [script, workspace], { encoding: 'utf8', stdio: 'pipe' });
    return { ok: true, output: '' };
  } catch (err) {
    return { ok: false, output: String((err as { stderr?: string }).stderr) };
  }
}

function twoServices() {
  workspace = mkdtempSync(join(tmpdir(), 'boundaries-'));
  write('services/alpha/package.json', JSON.stringify({ name: '@billing/alpha' }));
  write('services/beta/package.json', JSON.stringify({ name: '@billing/beta' }));
  write('services/beta/src/definition.ts', 'export const beta = 1;\n');
}

afterEach(() => rmSync(workspace, { recursive: true, force: true }));

test('a service importing shared contracts and its own files passes', () => {
  twoServices();
  write(
    'services/alpha/src/service/x.ts',
    "import { a } from '../domain/a.ts';\nimport { planPublished } from '@billing/proto/events/catalog';\n",
  );
  expect(checkWorkspace()).toEqual({ ok: true, output: '' });
});

test("a service importing another service's package fails, naming the file", () => {
  twoServices();
  write('services/alpha/src/consumers/x.ts', "import { beta } from '@billing/beta';\n");
  const result = checkWorkspace();
  expect(result.ok).toBe(false);
  expect(result.output).toContain('services/alpha/src/consumers/x.ts: imports @billing/beta (service beta)');
});

test("a service reaching into another service's folder fails", () => {
  twoServices();
  write('services/alpha/src/x.ts', "export { beta } from '../../beta/src/definition.ts';\n");
  expect(checkWorkspace().output).toContain('imports ../../beta/src/definition.ts (service beta)');
});

test('a shared package importing a service fails', () => {
  twoServices();
  write('packages/kit/src/x.ts', "const m = await import('@billing/beta');\n");
  expect(checkWorkspace().output).toContain('packages/kit/src/x.ts: imports @billing/beta (service beta)');
});

test.each([
  ['a JavaScript file', 'services/alpha/src/x.mjs', "import { beta } from '@billing/beta';\n", '@billing/beta'],
  ['require()', 'services/alpha/src/x.cts', "const beta = require('@billing/beta');\n", '@billing/beta'],
  [
    'createRequire()()',
    'services/alpha/src/x.ts',
    "import { createRequire } from 'node:module';\nconst beta = createRequire(import.meta.url)('@billing/beta');\n",
    '@billing/beta',
  ],
  ['a template literal', 'services/alpha/src/x.ts', 'const beta = await import(`@billing/beta`);\n', '@billing/beta'],
  [
    'a file: URL',
    'services/alpha/src/x.ts',
    "await import('file:///elsewhere/services/beta/src/definition.ts');\n",
    'file:',
  ],
])("a service's source naming another service through %s fails", (_, path, text, named) => {
  twoServices();
  write(path, text.replace('file:///elsewhere', `file://${workspace}`));
  const result = checkWorkspace();
  expect(result.ok).toBe(false);
  expect(result.output).toContain(`${path}: imports ${named}`);
});

test("a service's source reaching outside its folder other than into the shared packages fails", () => {
  twoServices();
  write('packages/platform/src/main.ts', "export { beta } from '@billing/beta';\n");
  write('services/alpha/src/x.ts', "import '../../../packages/platform/src/main.ts';\n");
  expect(checkWorkspace().output).toContain(
    'services/alpha/src/x.ts: imports ../../../packages/platform/src/main.ts (outside the service and the shared packages)',
  );
});

test("a service's tests may start another service by its package, not by its files", () => {
  twoServices();
  write('services/alpha/test/ok.test.ts', "import { beta } from '@billing/beta';\n");
  expect(checkWorkspace()).toEqual({ ok: true, output: '' });
  write('services/alpha/test/deep.test.ts', "import { x } from '@billing/beta/src/x.ts';\n");
  write('services/alpha/test/path.test.ts', "import { x } from '../../beta/src/x.ts';\n");
  const { output } = checkWorkspace();
  expect(output).toContain('services/alpha/test/deep.test.ts: imports @billing/beta/src/x.ts (service beta)');
  expect(output).toContain('services/alpha/test/path.test.ts: imports ../../beta/src/x.ts (service beta)');
});

test('a service depending on another workspace package than the shared ones fails', () => {
  twoServices();
  write(
    'services/alpha/package.json',
    JSON.stringify({
      name: '@billing/alpha',
      dependencies: { '@billing/kit': 'workspace:*', '@billing/beta': 'workspace:*' },
    }),
  );
  expect(checkWorkspace().output).toContain('services/alpha/package.json: depends on @billing/beta');
});

test("a service's source importing a workspace package other than the shared ones fails", () => {
  twoServices();
  write('services/alpha/src/x.ts', "import { waitFor } from '@billing/test/harness';\nimport '@billing/platform';\n");
  const { output } = checkWorkspace();
  expect(output).toContain(
    'services/alpha/src/x.ts: imports @billing/test/harness (a workspace package other than the shared ones)',
  );
  expect(output).toContain('services/alpha/src/x.ts: imports @billing/platform (a workspace package other than');
});
