// `pnpm test`'s test step: every Jest test of the workspace (unit, integration against real PostgreSQL and
// NATS, end-to-end). MikroORM 7 is ESM-only, so Jest runs with --experimental-vm-modules.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const jest = join(dirname(createRequire(import.meta.url).resolve('jest/package.json')), 'bin/jest.js');
const result = spawnSync(process.execPath, [jest, '--maxWorkers=2', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: {
    ...process.env,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-vm-modules --no-warnings`.trim(),
  },
});
process.exit(result.status ?? 1);
