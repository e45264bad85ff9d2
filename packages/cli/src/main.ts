#!/usr/bin/env node
// The `billing` command line. Commands:
//   billing catalog apply FILE [--dry-run] [--archive-missing]
// The catalog's address comes from BILLING_CATALOG_URL (default http://127.0.0.1:7101).
import { parseArgs } from 'node:util';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { catalogApply, describeError } from './catalog-apply.ts';

const USAGE = `usage:
  billing catalog apply FILE [--dry-run] [--archive-missing]

environment:
  BILLING_CATALOG_URL   the catalog service (default http://127.0.0.1:7101)`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'dry-run': { type: 'boolean', default: false },
      'archive-missing': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [group, command, file] = positionals;
  if (values.help || group !== 'catalog' || command !== 'apply' || !file || positionals.length !== 3) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const baseUrl = process.env.BILLING_CATALOG_URL ?? 'http://127.0.0.1:7101';
  const client = createClient(CatalogService, createGrpcTransport({ baseUrl }));
  try {
    const lines = await catalogApply(client, {
      file,
      dryRun: values['dry-run'],
      archiveMissing: values['archive-missing'],
    });
    for (const line of lines) console.log(line);
    return 0;
  } catch (err) {
    for (const line of describeError(err)) console.error(line);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  return 2;
});
