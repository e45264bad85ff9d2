// The `billing` command line against a real catalog service, as an operator runs it: what it does, and how
// it fails (one line, and an exit code of the failure's kind).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { catalogService } from '@billing/catalog';
import { queryBound } from '@billing/kit/db';
import { createMemoryBus } from '@billing/kit/memory-bus';
import { type ServerHandle, startServer } from '@billing/kit/server';
import {
  type ProcessOutcome,
  runNodeScript,
  sparePort,
  startTestService,
  type TestService,
  testLogger,
  waitFor,
} from '@billing/test/harness';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../../../examples/catalog.yaml', import.meta.url));
const bus = createMemoryBus();
const dir = mkdtempSync(join(tmpdir(), 'cli-'));
let service: TestService;

beforeAll(async () => {
  service = await startTestService(catalogService, { bus });
});

afterAll(async () => {
  await service.destroy();
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `billing ARGS` against the test's catalog service. */
function billing(...args: string[]): Promise<ProcessOutcome> {
  return runNodeScript(MAIN, args, { BILLING_CATALOG_URL: service.baseUrl });
}

/** The lines a run wrote to stderr. */
const errorLines = (outcome: ProcessOutcome) => outcome.stderr.trim().split('\n');

/** Writes a file of the test's own and returns its path. */
function written(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

test('a dry run lists the changes, applying makes them, and a second apply has nothing to do', async () => {
  const dry = await billing('catalog', 'apply', EXAMPLE, '--dry-run');
  expect(dry.code).toBe(0);
  expect(dry.stdout.split('\n').filter(Boolean)).toEqual([
    'dry run: these changes would be made:',
    '  create meter build_minutes',
    '  create meter api_calls',
    '  create feature private_repos',
    '  create feature build_minutes',
    '  create feature api_calls',
    '  create feature support_tier',
    '  add plan team v1',
    '  add plan business v1',
    '  upsert add-on build_minutes_pack',
  ]);
  const applied = await billing('catalog', 'apply', EXAMPLE);
  expect(applied.stdout.split('\n')[0]).toBe('applied:');
  expect((await billing('catalog', 'apply', EXAMPLE)).stdout.trim()).toBe(
    'the catalog already matches the document: nothing to do',
  );
});

test('an invalid document exits 1 and names every offending field', async () => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'plans:\n  - key: pro\n    name: Pro\n    interval: weekly\n    currencies: [usd]\n');
  const result = await billing('catalog', 'apply', file);
  expect(result.code).toBe(1);
  expect(result.stderr).toContain('document.plans[0].interval: must be one of month, quarter, year');
  expect(result.stderr).toContain('invalid_argument');
});

test('an unknown command exits 2 with one line listing the commands and where the usage is', async () => {
  const result = await billing('catalog', 'publish');
  expect(result.code).toBe(2);
  expect(result.stderr).toContain('usage:');
  expect(errorLines(result)).toEqual([
    'error: unknown command "catalog publish"; the commands are catalog apply, events parked, events replay, ' +
      'events republish (usage: billing --help)',
  ]);
});

test('`events parked` and `events republish` speak to any service through its AdminService', async () => {
  expect((await billing('events', 'parked', '--service', service.baseUrl)).stdout.trim()).toBe('no parked events');
  // The apply of the first test recorded 9 events (meters, features, plans, add-on) in the catalog's outbox, within
  // the last hour; a republish counts those the relay published.
  await waitFor(
    () =>
      queryBound<{ n: string }>(
        service.context.db.fork(),
        'select count(*) as n from outbox_event where published_at is null',
        [],
      ),
    ([row]) => row?.n === '0',
  );
  const lastHour = [
    '--since',
    new Date(Date.now() - 3_600_000).toISOString(),
    '--until',
    new Date(Date.now() + 60_000).toISOString(),
  ];
  const republished = await billing('events', 'republish', ...lastHour, '--service', service.baseUrl);
  expect(republished.stdout.trim()).toBe('9 events will be published again');
  // The service refuses a second within 10 minutes: exit 5, with its reason.
  const again = await billing('events', 'republish', ...lastHour, '--service', service.baseUrl);
  expect(again.code).toBe(5);
  expect(errorLines(again)).toEqual([
    expect.stringMatching(
      /^error: a republish was accepted at \S+Z; the next may be from \S+Z \(resource_exhausted\)$/,
    ),
  ]);
});

describe('`events republish` refuses a range that is not valid, exit 1 naming it', () => {
  // [outcome, --since, --until, the one line]
  test.each<[string, string, string, string]>([
    [
      'a --since that is not a time',
      'yesterday',
      '2026-11-25T10:00:00Z',
      'error: --since: not a time: "yesterday" (use ISO 8601, e.g. 2026-11-25T10:00:00Z)',
    ],
    [
      'an --until that is not a time',
      '2026-11-25T10:00:00Z',
      'tomorrow',
      'error: --until: not a time: "tomorrow" (use ISO 8601, e.g. 2026-11-25T10:00:00Z)',
    ],
    [
      'an --until before --since',
      '2026-11-25T10:00:00Z',
      '2026-11-25T09:00:00Z',
      'error: the republish is not valid: until_time: must be after since_time (invalid_argument)',
    ],
    [
      'a range longer than 24 hours',
      '2026-11-25T10:00:00Z',
      '2026-11-26T10:00:01Z',
      'error: the republish is not valid: until_time: must be at most 24 hours after since_time (invalid_argument)',
    ],
  ])('%s', async (_outcome, since, until, line) => {
    const result = await billing(
      'events',
      'republish',
      '--since',
      since,
      '--until',
      until,
      '--service',
      service.baseUrl,
    );
    expect(result.code).toBe(1);
    expect(errorLines(result)).toEqual([line]);
  });
});

test('`--help` lists every command and the exit codes', async () => {
  const help = await billing('--help');
  expect(help.code).toBe(0);
  expect(help.stdout).toContain('  billing events replay CONSUMER EVENT_ID --service URL');
  for (const code of ['1', '2', '3', '4', '5', '70']) expect(help.stdout).toMatch(new RegExp(`^  ${code} +\\S`, 'm'));
});

describe('every failure is one line with an exit code of its kind', () => {
  // Failures found before any call: [outcome, arguments, environment, exit code, the one line].
  test.each<[string, string[], Record<string, string>, number, string]>([
    [
      'a missing file exits 3 naming it',
      ['catalog', 'apply', join(dir, 'missing.yaml')],
      {},
      3,
      `error: cannot read ${join(dir, 'missing.yaml')}: no such file`,
    ],
    [
      'a directory given as the file exits 3 naming it',
      ['catalog', 'apply', dir],
      {},
      3,
      `error: cannot read ${dir}: it is a directory`,
    ],
    [
      'a catalog URL that is not one exits 4 naming its setting',
      ['catalog', 'apply', EXAMPLE],
      { BILLING_CATALOG_URL: 'catalog:7101' },
      4,
      'error: BILLING_CATALOG_URL: not an http or https URL: "catalog:7101"',
    ],
    [
      'a --service that is not a URL exits 4 naming the option',
      ['events', 'parked', '--service', 'catalog'],
      {},
      4,
      'error: --service: not an http or https URL: "catalog"',
    ],
    [
      'a missing option exits 2 saying which, with the usage of the command',
      ['events', 'parked'],
      {},
      2,
      'error: events parked: --service is required (usage: billing events parked [--consumer NAME] --service URL)',
    ],
    [
      'an option without its value exits 2 saying which',
      ['events', 'republish', '--until', '2026-11-25T10:00:00Z', '--service', 'http://127.0.0.1:7101', '--since'],
      {},
      2,
      'error: events republish: --since needs a value (usage: billing events republish --since TIME --until TIME --service URL)',
    ],
    [
      'a republish without --until exits 2 saying it is required',
      ['events', 'republish', '--since', '2026-11-25T10:00:00Z', '--service', 'http://127.0.0.1:7101'],
      {},
      2,
      'error: events republish: --until is required (usage: billing events republish --since TIME --until TIME --service URL)',
    ],
    [
      'an option without its value before another option exits 2 saying which, not taking the next as its value',
      ['events', 'parked', '--service', '--consumer'],
      {},
      2,
      'error: events parked: --service needs a value (usage: billing events parked [--consumer NAME] --service URL)',
    ],
    [
      'an option without its value before an option with one exits 2 saying which',
      ['events', 'republish', '--since', '--until', '2026-11-25T10:00:00Z', '--service', 'http://127.0.0.1:7101'],
      {},
      2,
      'error: events republish: --since needs a value (usage: billing events republish --since TIME --until TIME --service URL)',
    ],
    [
      'a missing argument exits 2 naming it',
      ['catalog', 'apply'],
      {},
      2,
      'error: catalog apply: FILE is missing (usage: billing catalog apply FILE [--dry-run] [--archive-missing])',
    ],
    [
      'an option the command does not have exits 2 naming it',
      ['catalog', 'apply', EXAMPLE, '--since', 'yesterday'],
      {},
      2,
      'error: catalog apply: unknown option --since (usage: billing catalog apply FILE [--dry-run] [--archive-missing])',
    ],
    [
      'an option named like a property of every object exits 2 as unknown',
      ['catalog', 'apply', EXAMPLE, '--constructor'],
      {},
      2,
      'error: catalog apply: unknown option --constructor (usage: billing catalog apply FILE [--dry-run] [--archive-missing])',
    ],
  ])('%s', async (_outcome, args, env, code, line) => {
    const result = await runNodeScript(MAIN, args, env);
    expect(result.code).toBe(code);
    expect(errorLines(result)).toEqual([line]);
  });

  // A file named neither .json nor .yaml is read as YAML unless it starts with `{`, and checked as such.
  test.each(['broken.yaml', 'broken.txt'])(
    'a YAML syntax error in %s exits 1 with its place, its reason and the line it is near, before any call',
    async (name) => {
      const broken = written(name, 'plans:\n  - key: pro\n    name: [Pro\n');
      // Nothing listens on the catalog URL: the document is refused before the service is called.
      const result = await runNodeScript(MAIN, ['catalog', 'apply', broken], {
        BILLING_CATALOG_URL: `http://127.0.0.1:${await sparePort()}`,
      });
      expect(result.code).toBe(1);
      expect(errorLines(result)).toEqual([
        `error: ${broken}:4:1: not valid YAML: Flow sequence in block collection must be sufficiently indented ` +
          'and end with a ] (near line 3: "    name: [Pro")',
      ]);
    },
  );

  test('a file named neither .json nor .yaml that starts with `{` is read as JSON, as the service reads it', async () => {
    const result = await billing('catalog', 'apply', written('broken-json.txt', '{"plans": [}\n'));
    expect(result.code).toBe(1);
    // The service's message quotes the document, line break included: the CLI prints it on one line.
    expect(errorLines(result)).toEqual([
      "error: the catalog document is not valid: document: not valid JSON: Unexpected token '}', " +
        '"{"plans": [} " is not valid JSON (invalid_argument)',
    ]);
  });

  test('an unknown key at the top of the document is named by its path', async () => {
    const result = await billing('catalog', 'apply', written('unknown-key.yaml', 'plan: {}\n'));
    expect(result.code).toBe(1);
    expect(errorLines(result)).toEqual([
      'error: the catalog document is not valid: document.plan: unknown key (invalid_argument)',
    ]);
  });

  test('a document with several offending fields names the first in the line and each other below it', async () => {
    const result = await billing('catalog', 'apply', written('two-faults.yaml', 'plan: {}\nmeter: {}\n'));
    expect(result.code).toBe(1);
    expect(errorLines(result)).toEqual([
      'error: the catalog document is not valid: document.plan: unknown key (and 1 more) (invalid_argument)',
      '  document.meter: unknown key',
    ]);
  });

  test('a service that cannot be reached exits 4 naming its URL', async () => {
    const url = `http://127.0.0.1:${await sparePort()}`;
    const result = await billing('events', 'parked', '--service', url);
    expect(result.code).toBe(4);
    expect(errorLines(result)).toHaveLength(1);
    expect(errorLines(result)[0]).toMatch(
      new RegExp(`^error: cannot reach ${url}: .*ECONNREFUSED.* \\(unavailable\\)$`),
    );
  });

  describe('a URL where no gRPC server of the service answers exits 4 naming it', () => {
    let plainHttp: Server;
    let otherService: ServerHandle;

    beforeAll(async () => {
      plainHttp = createServer((_request, response) => response.end('a web page'));
      await new Promise<void>((resolve) => plainHttp.listen(0, '127.0.0.1', resolve));
      // A server of the platform's kind (gRPC, health, reflection) that serves no CatalogService.
      otherService = await startServer({
        host: '127.0.0.1',
        port: 0,
        routes: () => {},
        services: [],
        logger: testLogger,
      });
    });

    afterAll(async () => {
      await new Promise((resolve) => plainHttp.close(resolve));
      await otherService.shutdown({ graceMs: 1_000 });
    });

    const port = (server: Server) => {
      const address = server.address();
      return typeof address === 'object' && address ? address.port : 0;
    };

    // [outcome, the catalog URL, what the one line says after the URL]
    test.each<[string, () => string, RegExp]>([
      ['a plain HTTP/1.1 server', () => `http://127.0.0.1:${port(plainHttp)}`, /^Protocol error \(internal\)$/],
      [
        'a gRPC server of another service',
        () => `http://127.0.0.1:${otherService.port}`,
        /^HTTP 404 \(unimplemented\)$/,
      ],
      // OpenSSL's message ends with a line break: the CLI prints it on the same line.
      [
        'the service, with https where it speaks no TLS',
        () => service.baseUrl.replace(/^http:/, 'https:'),
        /^\S+:SSL routines:\S+:wrong version number:\S+: \(internal\)$/,
      ],
    ])('%s', async (_outcome, catalogUrl, reason) => {
      const url = catalogUrl();
      const result = await runNodeScript(MAIN, ['catalog', 'apply', EXAMPLE], { BILLING_CATALOG_URL: url });
      expect(result.code).toBe(4);
      const [line = '', ...more] = errorLines(result);
      expect(more).toEqual([]);
      const prefix = `error: cannot reach ${url}: `;
      expect(line.slice(0, prefix.length)).toBe(prefix);
      expect(line.slice(prefix.length)).toMatch(reason);
    });
  });

  test('a call the service refuses for another reason exits 5 with its code', async () => {
    const result = await billing('events', 'replay', 'nobody', 'evt-1', '--service', service.baseUrl);
    expect(result.code).toBe(5);
    expect(errorLines(result)).toEqual(['error: this service has no consumer "nobody" (not_found)']);
  });
});

test("`pnpm -s billing`, as the README runs it, prints only the CLI's line and exits with its code", () => {
  // pnpm silenced: no `> billing-platform@ billing` header on stdout, no ELIFECYCLE line on stderr.
  const missing = join(dir, 'missing.yaml');
  const result = spawnSync('pnpm', ['-s', 'billing', 'catalog', 'apply', missing], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  expect(result.status).toBe(3);
  expect(result.stdout).toBe('');
  expect(result.stderr).toBe(`error: cannot read ${missing}: no such file\n`);
});
