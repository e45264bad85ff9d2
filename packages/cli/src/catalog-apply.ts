// `billing catalog apply FILE [--dry-run] [--archive-missing]`: sends a catalog document to ApplyCatalog and
// prints the changes it made (or, in a dry run, would make).
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import {
  type CatalogChange,
  CatalogChangeKind,
  CatalogFormat,
  type CatalogService,
} from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { BadRequestSchema } from '@billing/proto/google/rpc/error_details_pb';
import { type Client, Code, ConnectError } from '@connectrpc/connect';

/** Parsed arguments of `catalog apply`. */
export interface CatalogApplyArgs {
  /** The document's path. */
  file: string;
  /** Only show what would change. */
  dryRun: boolean;
  /** Archive what the document does not name. */
  archiveMissing: boolean;
}

const VERBS: Record<CatalogChangeKind, string> = {
  [CatalogChangeKind.UNSPECIFIED]: 'change',
  [CatalogChangeKind.FEATURE_CREATED]: 'create feature',
  [CatalogChangeKind.FEATURE_UPDATED]: 'update feature',
  [CatalogChangeKind.FEATURE_ARCHIVED]: 'archive feature',
  [CatalogChangeKind.METER_CREATED]: 'create meter',
  [CatalogChangeKind.METER_ARCHIVED]: 'archive meter',
  [CatalogChangeKind.PLAN_ADDED]: 'add plan',
  [CatalogChangeKind.PLAN_VERSION_PUBLISHED]: 'publish plan',
  [CatalogChangeKind.PLAN_ARCHIVED]: 'archive plan',
  [CatalogChangeKind.PLAN_REACTIVATED]: 'reactivate plan',
  [CatalogChangeKind.ADD_ON_UPSERTED]: 'upsert add-on',
  [CatalogChangeKind.ADD_ON_ARCHIVED]: 'archive add-on',
};

/** One line per change, e.g. `publish plan team v2`. */
export function describeChange(change: CatalogChange): string {
  return `${VERBS[change.kind]} ${change.key}${change.version ? ` v${change.version}` : ''}`;
}

/** Runs the command; returns the lines to print. Throws ConnectError on a refused document. */
export async function catalogApply(client: Client<typeof CatalogService>, args: CatalogApplyArgs): Promise<string[]> {
  const document = await readFile(args.file, 'utf8');
  const ext = extname(args.file).toLowerCase();
  const format =
    ext === '.json'
      ? CatalogFormat.JSON
      : ext === '.yaml' || ext === '.yml'
        ? CatalogFormat.YAML
        : CatalogFormat.UNSPECIFIED;
  // One request id per invocation: the transport's retries reuse it, a new invocation is a new apply.
  const response = await client.applyCatalog({
    requestId: `cli-${randomUUID()}`,
    document,
    format,
    dryRun: args.dryRun,
    archiveMissing: args.archiveMissing,
  });
  if (response.changes.length === 0) return ['the catalog already matches the document: nothing to do'];
  const header = args.dryRun ? 'dry run: these changes would be made:' : 'applied:';
  return [header, ...response.changes.map((c) => `  ${describeChange(c)}`)];
}

/** Human-readable lines for a refused call, with every offending field. */
export function describeError(err: unknown): string[] {
  const error = ConnectError.from(err);
  // The gRPC name of the code (invalid_argument), which operators search for.
  const code = (Code[error.code] ?? 'unknown').replace(/[A-Z]/g, (c, i: number) => `${i ? '_' : ''}${c.toLowerCase()}`);
  const lines = [`error: ${error.rawMessage} (${code})`];
  for (const detail of error.findDetails(BadRequestSchema)) {
    for (const v of detail.fieldViolations) lines.push(`  ${v.field}: ${v.description}`);
  }
  return lines;
}
