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
