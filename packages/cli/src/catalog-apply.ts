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
import type { Client } from '@connectrpc/connect';
import { LineCounter, parseDocument } from 'yaml';
import { CliFailure, EXIT, shown, unreadableFile } from './failure.ts';

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

/**
 * The format a document is sent in: its file's extension says, and a file named otherwise (`catalog.txt`)
 * is read as the service reads a document of no stated format (JSON if it starts with `{`, YAML otherwise),
 * so that every document the service would read as YAML has its syntax checked here first.
 */
function documentFormat(file: string, document: string): CatalogFormat.JSON | CatalogFormat.YAML {
  const ext = extname(file).toLowerCase();
  if (ext === '.json') return CatalogFormat.JSON;
  if (ext === '.yaml' || ext === '.yml') return CatalogFormat.YAML;
  return document.trimStart().startsWith('{') ? CatalogFormat.JSON : CatalogFormat.YAML;
}

/**
 * Refuses a YAML document that does not parse, with the place and the line it is at: the service reads
 * the document again and reports what it means, but the file and its lines are only known here.
 */
function checkYamlSyntax(file: string, document: string): void {
  const lineCounter = new LineCounter();
  const [error] = parseDocument(document, { lineCounter, prettyErrors: false }).errors;
  if (!error) return;
  const { line, col } = lineCounter.linePos(error.pos[0]);
  // The error may stand at the end of what is wrong (an unclosed bracket is found on the next line, or at
  // the end of the file): the excerpt is the nearest line with text, at or before the error.
  const lines = document.split('\n');
  let near = line;
  while (near > 1 && !lines[near - 1]?.trim()) near--;
  throw new CliFailure(
    EXIT.invalid,
    `${file}:${line}:${col}: not valid YAML: ${error.message} (near line ${near}: ${shown(lines[near - 1] ?? '')})`,
  );
}

/** Runs the command; returns the lines to print. Throws CliFailure, or ConnectError on a refused document. */
export async function catalogApply(client: Client<typeof CatalogService>, args: CatalogApplyArgs): Promise<string[]> {
  const document = await readFile(args.file, 'utf8').catch((err: unknown) => {
    throw unreadableFile(args.file, err);
  });
  const format = documentFormat(args.file, document);
  if (format === CatalogFormat.YAML) checkYamlSyntax(args.file, document);
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
