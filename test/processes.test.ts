// The harness's real processes: a script's exit code, and a script that outlives its timeout killed and named
// by its signal (a service that starts when it should have stopped must fail its test, not hang it).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from '@jest/globals';
import { runNodeScript } from './harness/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'processes-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

test('a script that exits reports its exit code and what it wrote, and no signal', async () => {
  const exits = script('exits.ts', "process.stderr.write('refused\\n');\nprocess.exit(3);\n");
  expect(await runNodeScript(exits, [], {})).toEqual({ code: 3, signal: null, stdout: '', stderr: 'refused\n' });
});

test('a script that outlives its timeout is killed with SIGKILL, and its outcome names the signal', async () => {
  const serves = script('serves.ts', 'setInterval(() => undefined, 1_000);\n');
  expect(await runNodeScript(serves, [], {}, { timeoutMs: 1_000 })).toMatchObject({ code: null, signal: 'SIGKILL' });
});
