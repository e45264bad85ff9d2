// Settings that carry credentials, refused: a URL with a wrong scheme, a port that is no number, or a password in
// its query stops the service with one line naming the setting (exit code 78), and the line leaves out the
// password or token, wherever in the URL it was. (A well-formed URL with a password runs through every fault
// of database-outage.ts and database-at-start.test.ts, whose every log line and answer is checked too.)
import { runNodeScript, type ServiceName, serviceMain, sparePort } from '@billing/test/harness';
import { expect, test } from '@jest/globals';

/** The configuration error's exit code (EX_CONFIG). */
const EXIT_CONFIG = 78;
const SECRET = 'S3cr3tPassw0rd';

test.each<[string, ServiceName, string]>([
  ['USAGE_DATABASE_URL', 'usage', `postgress://billing:${SECRET}@db.internal:5432/usage`],
  ['USAGE_DATABASE_URL', 'usage', `postgres://billing:${SECRET}@db.internal:port/usage`],
  ['USAGE_DATABASE_URL', 'usage', `postgress://db.internal:5432/usage?user=billing&password=${SECRET}`],
  ['CATALOG_DATABASE_URL', 'catalog', `mysql://root:${SECRET}@db.internal/catalog`],
  ['NATS_URL', 'usage', `natz://billing:${SECRET}@nats.internal:4222`],
  ['NATS_URL', 'usage', `nats://nats-1.internal:4222,natz://${SECRET}@nats-2.internal:4222`],
  ['CATALOG_URL', 'subscription', `htp://billing:${SECRET}@catalog.internal:7101`],
])('%s refused in %s names the setting in one line without its credential', async (setting, service, value) => {
  const outcome = await runNodeScript(serviceMain(service), [], {
    [setting]: value,
    [`${service.toUpperCase()}_PORT`]: String(await sparePort()),
  });
  expect([outcome.code, outcome.signal]).toEqual([EXIT_CONFIG, null]);
  expect(outcome.stderr.trim().split('\n')).toEqual([expect.stringContaining(setting)]);
  expect(`${outcome.stdout}${outcome.stderr}`).not.toContain(SECRET);
});
