// How the CLI fails: every failure is one line on stderr (a refused document adds a line for each further
// offending field) and an exit code that says what kind of failure it was, so scripts can tell them apart. A URL
// in a line is printed without its user info and credential parameters.
import { redactUrl, redactUrls } from '@billing/kit/redact';
import { BadRequestSchema } from '@billing/proto/google/rpc/error_details_pb';
import { Code, ConnectError } from '@connectrpc/connect';
import { headerGrpcStatus } from '@connectrpc/connect/protocol-grpc';

/** The exit codes of the CLI, by kind of failure (listed in `billing --help`). */
export const EXIT = {
  /** The input is not valid: the service answered invalid_argument, or a value or document is malformed. */
  invalid: 1,
  /** The command line is wrong: unknown command or option, missing argument or option. */
  usage: 2,
  /** The file cannot be read. */
  file: 3,
  /**
   * The service cannot be reached: its URL is not valid, or no gRPC server of the service answers there (the
   * connection is refused, another server or service answers, the URL says http or https and the port speaks
   * the other), or it timed out or was unavailable.
   */
  unreachable: 4,
  /** The service refused the call for another reason: a gRPC status it sent (not_found, failed_precondition...). */
  refused: 5,
  /** A fault of the CLI itself. */
  internal: 70,
} as const;

/** A failure of the CLI: the line it prints and its exit code. */
export class CliFailure extends Error {
  override name = 'CliFailure';
  /** The process's exit code. */
  readonly exitCode: number;
  /** Lines printed after the first, each indented by two spaces (one per further offending field). */
  readonly details: readonly string[];

  constructor(exitCode: number, message: string, details: readonly string[] = []) {
    super(message);
    this.exitCode = exitCode;
    this.details = details;
  }
}

/** A value shown in a message: JSON-quoted, and cut when long. */
export function shown(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
}

/** Checks a service URL given by `source` (a flag or a setting); returns it. */
export function serviceUrl(source: string, raw: string): string {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new CliFailure(EXIT.unreachable, `${source}: not an http or https URL: ${shown(redactUrl(raw))}`);
  }
  return raw;
}

// What the usual reasons a file cannot be read are called in a message.
const FILE_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EISDIR: 'it is a directory',
  EACCES: 'permission denied',
};

/** The CLI failure for a file that cannot be read. */
export function unreadableFile(file: string, err: unknown): CliFailure {
  const code = err instanceof Error && 'code' in err ? String(err.code) : '';
  const reason = FILE_ERRORS[code] ?? (err instanceof Error ? err.message : String(err));
  return new CliFailure(EXIT.file, `cannot read ${file}: ${reason}`);
}

// A gRPC code's name as operators search for it (invalid_argument).
const codeName = (code: Code) =>
  (Code[code] ?? 'unknown').replace(/[A-Z]/g, (c, i: number) => `${i ? '_' : ''}${c.toLowerCase()}`);

/** What a call to the service at `baseUrl` that failed becomes: a refusal, or a service that could not be reached. */
export function callFailure(err: ConnectError, baseUrl: string): CliFailure {
  // Only a gRPC server's answer carries a grpc-status. An error without one is the client's own reading of
  // what happened: the connection failed (refused, TLS), or what answered is not a gRPC server of the
  // service (a plain HTTP server, another service's port answering HTTP 404).
  const sentByService = err.metadata.has(headerGrpcStatus);
  const unreachable = !sentByService || err.code === Code.Unavailable || err.code === Code.DeadlineExceeded;
  const exitCode = unreachable ? EXIT.unreachable : err.code === Code.InvalidArgument ? EXIT.invalid : EXIT.refused;
  const message = `${unreachable ? `cannot reach ${baseUrl}: ` : ''}${err.rawMessage} (${codeName(err.code)})`;
  // The service's message names the first offending field; the others follow, one per line.
  const details = err
    .findDetails(BadRequestSchema)
    .flatMap((detail) => detail.fieldViolations.map((v) => `${v.field}: ${v.description}`))
    .filter((violation) => !message.includes(violation));
  return new CliFailure(exitCode, message, details);
}

/** A text on one line: each line break, with the blanks around it, becomes one space; blanks inside a line stay. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\n\r\v\f\u0085\u2028\u2029]\s*/gu, ' ').trim();
}

/**
 * The lines a failure prints on stderr. Whatever its text holds (a service's message with an excerpt of a
 * document, an OpenSSL message), each line stays one line, and shows no URL's credentials.
 */
export function failureLines(failure: CliFailure): string[] {
  return [`error: ${oneLine(failure.message)}`, ...failure.details.map((detail) => `  ${oneLine(detail)}`)].map(
    redactUrls,
  );
}

/** Any error thrown by a command that calls the service at `baseUrl`, as a CLI failure. */
export function asFailure(err: unknown, baseUrl: string): CliFailure {
  if (err instanceof CliFailure) return err;
  if (err instanceof ConnectError) return callFailure(err, baseUrl);
  return new CliFailure(EXIT.internal, `a fault of the CLI: ${err instanceof Error ? err.message : String(err)}`);
}
