import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runNodeScript } from '@billing/test/harness';
import { afterAll, describe, expect, test } from '@jest/globals';
import { ConfigError, describeSettings, loadConfig, parsers, setting } from '../src/config.ts';

const spec = {
  port: setting({ env: 'X_PORT', description: 'port', default: 7101, parse: parsers.port }),
  url: setting({ env: 'X_DATABASE_URL', description: 'database', parse: parsers.url('postgres') }),
  grace: setting({ env: 'X_GRACE', description: 'grace', default: 10_000, parse: parsers.duration }),
};

describe('configuration', () => {
  test('reads, converts and defaults settings', () => {
    expect(loadConfig(spec, { X_DATABASE_URL: 'postgres://h/db', X_GRACE: '5s' })).toEqual({
      port: 7101,
      url: 'postgres://h/db',
      grace: 5_000,
    });
  });

  test('a malformed setting is one line naming it', () => {
    expect(() => loadConfig(spec, { X_PORT: 'abc', X_DATABASE_URL: 'postgres://h/db' })).toThrow(
      new ConfigError('X_PORT: expected a port number 0-65535, got "abc"'),
    );
  });

  test('a missing required setting is one line naming it', () => {
    expect(() => loadConfig(spec, {})).toThrow(new ConfigError('X_DATABASE_URL: required (database)'));
  });

  test('a URL of another scheme is refused', () => {
    expect(() => loadConfig(spec, { X_DATABASE_URL: 'mysql://h/db' })).toThrow(
      /X_DATABASE_URL: expected a postgres URL/,
    );
  });

  test('settings are described for READMEs', () => {
    expect(describeSettings(spec)).toEqual([
      { env: 'X_PORT', default: '7101', description: 'port' },
      { env: 'X_DATABASE_URL', default: '(required)', description: 'database' },
      { env: 'X_GRACE', default: '10000', description: 'grace' },
    ]);
  });
});

// Credentials a mistyped setting would otherwise print.
const PASSWORD = 'S3cr3tPassw0rd';
const TOKEN = 'n4ts-t0ken';

const servers = setting({ env: 'X_NATS_URL', description: 'NATS', default: [], parse: parsers.urls('nats', 'tls') });
const refusal = (parse: () => unknown) => {
  try {
    parse();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  throw new Error('the setting was accepted');
};

describe('a refused setting never shows a credential', () => {
  test('a postgres URL of another scheme is shown without its user and password', () => {
    const message = refusal(() =>
      loadConfig(spec, { X_DATABASE_URL: `postgress://billing:${PASSWORD}@db.internal:5432/usage` }),
    );
    expect(message).toBe(
      'X_DATABASE_URL: expected a postgres URL, got "postgress://[redacted]@db.internal:5432/usage"',
    );
  });

  test('a password that reads as a port and a path (2024/...) is shown redacted to the last @', () => {
    const message = refusal(() =>
      loadConfig(spec, { X_DATABASE_URL: `postgress://billing:2024/${PASSWORD}@db.internal:5432/usage` }),
    );
    expect(message).toBe(
      'X_DATABASE_URL: expected a postgres URL, got "postgress://[redacted]@db.internal:5432/usage"',
    );
  });

  test('a NATS URL list is shown without the token or the user and password of any server', () => {
    const message = refusal(() =>
      loadConfig({ servers }, { X_NATS_URL: `nats://${TOKEN}@nats-1:4222, natz://nats:${PASSWORD}@nats-2:4222` }),
    );
    expect(message).toBe('X_NATS_URL: expected a nats or tls URL, got "natz://[redacted]@nats-2:4222"');
    const token = refusal(() => loadConfig({ servers }, { X_NATS_URL: `http://${TOKEN}@nats-1:4222` }));
    expect(token).toBe('X_NATS_URL: expected a nats or tls URL, got "http://[redacted]@nats-1:4222"');
  });

  test.each([
    ['a port that is not one', `postgres://billing:${PASSWORD}@db.internal:five/usage`],
    ['a password with a slash', `postgres://billing:${PASSWORD}/x@db.internal:5432/usage`],
    ['a port out of range', `postgres://billing:${PASSWORD}@db.internal:99999/usage`],
    ['two ports', `postgres://billing:${PASSWORD}@db.internal:5432:5433/usage`],
    ['no scheme', `billing:${PASSWORD}@db.internal:5432/usage`],
  ])('an unparseable URL with user:password@ (%s) is shown without them', (_case, url) => {
    const message = refusal(() => loadConfig(spec, { X_DATABASE_URL: url }));
    expect(message).toMatch(/^X_DATABASE_URL: expected a (postgres )?URL, got ".*\[redacted\]@db\.internal:/);
    expect(message).not.toContain(PASSWORD);
    expect(message).not.toContain('billing');
  });

  test('credential parameters of a URL, and a connection string given for a URL, are redacted', () => {
    const query = refusal(() =>
      loadConfig(spec, { X_DATABASE_URL: `mysql://db/usage?sslpassword=${PASSWORD}&api_key=${TOKEN}&ssl=true` }),
    );
    expect(query).toBe(
      'X_DATABASE_URL: expected a postgres URL, got "mysql://db/usage?sslpassword=[redacted]&api_key=[redacted]&ssl=true"',
    );
    const keywords = refusal(() =>
      loadConfig(spec, { X_DATABASE_URL: `host=db.internal user=billing password=${PASSWORD} sslmode=require` }),
    );
    expect(keywords).toBe(
      'X_DATABASE_URL: expected a URL, got "host=db.internal user=billing password=[redacted] sslmode=require"',
    );
  });

  test('a ConfigError of any check redacts the URLs in its message', () => {
    expect(new ConfigError(`CATALOG_URL: https://ops:${PASSWORD}@catalog:7101?token=${TOKEN} is refused`).message).toBe(
      'CATALOG_URL: https://[redacted]@catalog:7101?token=[redacted] is refused',
    );
  });

  describe('a service process', () => {
    // A service's main as deployed: its settings read by the kit's runServiceMain, which exits on a bad one.
    const folder = mkdtempSync(join(tmpdir(), 'config-redaction-'));
    const main = join(folder, 'main.mts');
    const serviceMain = pathToFileURL(join(import.meta.dirname, '../src/service-main.ts')).href;
    writeFileSync(
      main,
      `import { runServiceMain } from ${JSON.stringify(serviceMain)};\n` +
        "await runServiceMain({ name: 'usage', defaultPort: 0 });\n",
    );
    afterAll(() => rmSync(folder, { recursive: true, force: true }));

    test.each([
      [
        'a database URL of the wrong scheme',
        { USAGE_DATABASE_URL: `postgress://billing:${PASSWORD}@db.internal:5432/usage` },
        'configuration error: USAGE_DATABASE_URL: expected a postgres or postgresql URL, got "postgress://[redacted]@db.internal:5432/usage"',
      ],
      [
        'a NATS URL list with a token and a bad port',
        { NATS_URL: `nats://${TOKEN}@nats-1:4222,nats://nats:${PASSWORD}@nats-2:42x22` },
        'configuration error: NATS_URL: expected a URL, got "nats://[redacted]@nats-2:42x22"',
      ],
    ])('stops on %s with one line that shows no credential', async (_case, env, line) => {
      const outcome = await runNodeScript(main, [], env);
      expect(outcome.code).toBe(78);
      expect(outcome.stderr.trim().split('\n')).toEqual([line]);
      expect(outcome.stdout + outcome.stderr).not.toContain(PASSWORD);
      expect(outcome.stdout + outcome.stderr).not.toContain(TOKEN);
    });
  });
});
