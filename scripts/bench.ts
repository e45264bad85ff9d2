// `pnpm bench [name...]`: runs every benchmark (`packages/*/bench/*.bench.ts`, `services/*/bench/*.bench.ts`), or
// those whose path contains one of the names (`pnpm bench at-rest`), one after the other, each in its own process.
// Each prints its figures and the ratio to a baseline measured in the same run; settings come from BENCH_*
// variables. Not part of `pnpm test`: timings are reported, never asserted.
import { spawnSync } from 'node:child_process';
import { globSync } from 'node:fs';

const names = process.argv.slice(2);
const files = globSync(['packages/*/bench/*.bench.ts', 'services/*/bench/*.bench.ts'])
  .filter((file) => names.length === 0 || names.some((name) => file.includes(name)))
  .sort();
if (files.length === 0) {
  console.error(`no benchmark matches ${names.join(', ')}`);
  process.exit(1);
}
let failed = 0;
for (const file of files) {
  console.log(`\n### ${file}`);
  const result = spawnSync(process.execPath, [file], { stdio: 'inherit' });
  if (result.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
