#!/usr/bin/env node
// The `billing` command line for operators.
import { parseArgs } from 'node:util';
import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { type Client, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { catalogApply, describeError } from './catalog-apply.ts';
import { listParked, replayParked, republish } from './events.ts';

const USAGE = `usage:
  billing catalog apply FILE [--dry-run] [--archive-missing]
  billing events parked [--consumer NAME] --service URL
  billing events replay CONSUMER EVENT_ID --service URL
  billing events republish --since TIME --service URL

environment:
  BILLING_CATALOG_URL   the catalog service (default http://127.0.0.1:7101)`;

const client = <S extends typeof CatalogService | typeof AdminService>(service: S, baseUrl: string): Client<S> =>
  createClient(service, createGrpcTransport({ baseUrl }));

async function run(argv: string[]): Promise<string[] | undefined> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'dry-run': { type: 'boolean', default: false },
      'archive-missing': { type: 'boolean', default: false },
      consumer: { type: 'string', default: '' },
      service: { type: 'string' },
      since: { type: 'string' },
    },
  });
  const [group, command, ...rest] = positionals;
  if (group === 'catalog' && command === 'apply' && rest.length === 1 && rest[0]) {
    const catalog = client(CatalogService, process.env.BILLING_CATALOG_URL ?? 'http://127.0.0.1:7101');
    return catalogApply(catalog, {
      file: rest[0],
      dryRun: values['dry-run'],
      archiveMissing: values['archive-missing'],
    });
  }
  if (group === 'events' && values.service) {
    const admin = client(AdminService, values.service);
    if (command === 'parked' && rest.length === 0) return listParked(admin, values.consumer);
    if (command === 'replay' && rest.length === 2 && rest[0] && rest[1]) return replayParked(admin, rest[0], rest[1]);
    if (command === 'republish' && rest.length === 0 && values.since) return republish(admin, values.since);
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  let lines: string[] | undefined;
  try {
    lines = await run(argv);
  } catch (err) {
    for (const line of describeError(err)) console.error(line);
    return 1;
  }
  if (!lines) {
    console.error(USAGE);
    return 2;
  }
  for (const line of lines) console.log(line);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
