// `pnpm bench`: runs every benchmark (`packages/*/bench/*.bench.ts`, `services/*/bench/*.bench.ts`) one after
// the other, each in its own process. Each prints its figures and the ratio to a baseline measured in the
// same run. Not part of `pnpm test`: timings are reported, never asserted.
import { spawnSync } from 'node:child_process';
import { globSync } from 'node:fs';

const files = globSync(['packages/*/bench/*.bench.ts', 'services/*/bench/*.bench.ts']).sort();
let failed = 0;
for (const file of files) {
  console.log(`\n### ${file}`);
  const result = spawnSync(process.execPath, [file, ...process.argv.slice(2)], { stdio: 'inherit' });
  if (result.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
