import { describe, expect, test } from '@jest/globals';
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
