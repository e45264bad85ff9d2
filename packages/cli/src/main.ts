#!/usr/bin/env node
// The `billing` command line for operators. Every failure is one line on stderr with an exit code of its
// kind (failure.ts); a wrong command line says what is wrong and the usage of the command meant.
import { parseArgs } from 'node:util';
import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { createClient, type Transport } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { catalogApply } from './catalog-apply.ts';
import { listParked, replayParked, republish } from './events.ts';
import { asFailure, CliFailure, EXIT, failureLines, serviceUrl } from './failure.ts';

/** What one invocation of a command was given, its required arguments and options checked. */
interface Invocation {
  /** The positional arguments, as many as the command names. */
  args: string[];
  /** A string option's value ('' when not given). */
  text(option: string): string;
  /** Whether a boolean option was given. */
  flag(option: string): boolean;
}

/** A command: its usage, its arguments, its options (and which are required), and what it does. */
interface Command {
  /** Its usage line, printed with every mistake in its command line. */
  usage: string;
  /** The names of its positional arguments, all required. */
  args: readonly string[];
  /** Its options, by name, and whether each takes a value. */
  options: Readonly<Record<string, 'string' | 'boolean'>>;
  /** The options it cannot run without. */
  required?: readonly string[];
  /** The URL of the service the command calls, checked. */
  serviceUrl(invocation: Invocation): string;
  /** Runs it through a transport to that service; returns the lines to print. */
  run(invocation: Invocation, transport: Transport): Promise<string[]>;
}

const catalogUrl = () => serviceUrl('BILLING_CATALOG_URL', process.env.BILLING_CATALOG_URL || 'http://127.0.0.1:7101');
const serviceOption = (invocation: Invocation) => serviceUrl('--service', invocation.text('service'));

const COMMANDS: Readonly<Record<string, Command>> = {
  'catalog apply': {
    usage: 'billing catalog apply FILE [--dry-run] [--archive-missing]',
    args: ['FILE'],
    options: { 'dry-run': 'boolean', 'archive-missing': 'boolean' },
    serviceUrl: catalogUrl,
    run: ({ args: [file = ''], flag }, transport) =>
      catalogApply(createClient(CatalogService, transport), {
        file,
        dryRun: flag('dry-run'),
        archiveMissing: flag('archive-missing'),
      }),
  },
  'events parked': {
    usage: 'billing events parked [--consumer NAME] --service URL',
    args: [],
    options: { consumer: 'string', service: 'string' },
    required: ['service'],
    serviceUrl: serviceOption,
    run: (invocation, transport) => listParked(createClient(AdminService, transport), invocation.text('consumer')),
  },
  'events replay': {
    usage: 'billing events replay CONSUMER EVENT_ID --service URL',
    args: ['CONSUMER', 'EVENT_ID'],
    options: { service: 'string' },
    required: ['service'],
    serviceUrl: serviceOption,
    run: ({ args: [consumer = '', eventId = ''] }, transport) =>
      replayParked(createClient(AdminService, transport), consumer, eventId),
  },
  'events republish': {
    usage: 'billing events republish --since TIME --until TIME --service URL',
    args: [],
    options: { since: 'string', until: 'string', service: 'string' },
    required: ['since', 'until', 'service'],
    serviceUrl: serviceOption,
    run: (invocation, transport) =>
      republish(createClient(AdminService, transport), invocation.text('since'), invocation.text('until')),
  },
};

// Every option of every command, so that parseArgs knows which take a value.
const OPTIONS = Object.fromEntries(
  Object.values(COMMANDS).flatMap((command) =>
    Object.entries(command.options).map(([option, type]) => [option, { type }] as const),
  ),
);

const USAGE = `usage:
${Object.values(COMMANDS)
  .map((command) => `  ${command.usage}`)
  .join('\n')}

environment:
  BILLING_CATALOG_URL   the catalog service (default http://127.0.0.1:7101)

exit codes:
  ${EXIT.invalid}   the input is not valid (the service answered invalid_argument, or a value or document is malformed)
  ${EXIT.usage}   the command line is wrong (unknown command or option, missing argument or option)
  ${EXIT.file}   the file cannot be read
  ${EXIT.unreachable}   the service cannot be reached (not a valid URL, connection refused, another server or service answers,
      wrong http or https, timed out or unavailable)
  ${EXIT.refused}   the service refused the call for another reason (a gRPC status it sent: not_found, failed_precondition...)
  ${EXIT.internal}  a fault of the CLI itself`;

/** Checks the command line against the command it names; returns the command and its invocation. */
function parse(argv: string[]): { command: Command; invocation: Invocation } {
  // Not strict: unknown and misused options are reported here, in one line each, with the command's usage.
  const { positionals, values, tokens } = parseArgs({
    args: argv,
    options: OPTIONS,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const [group = '', name = '', ...args] = positionals;
  const command = COMMANDS[`${group} ${name}`];
  if (!command) {
    const given = positionals.length > 0 ? `unknown command ${JSON.stringify(positionals.join(' '))}` : 'no command';
    throw new CliFailure(
      EXIT.usage,
      `${given}; the commands are ${Object.keys(COMMANDS).join(', ')} (usage: billing --help)`,
    );
  }
  const wrong = (reason: string) => new CliFailure(EXIT.usage, `${group} ${name}: ${reason} (usage: ${command.usage})`);
  // An option of the command's own (`--service`, `--since=...`) is never the value of the option before it:
  // that option was given no value, and parseArgs took the next argument instead.
  const isOwnOption = (value: string) => {
    const option = /^--([^=]+)/.exec(value)?.[1];
    return option !== undefined && Object.hasOwn(command.options, option);
  };
  const valueless = new Set(
    tokens.flatMap((token) =>
      token.kind === 'option' && token.value !== undefined && !token.inlineValue && isOwnOption(token.value)
        ? [token.name]
        : [],
    ),
  );
  for (const [option, value] of Object.entries(values)) {
    // The command's own options only: `--constructor`, which every object inherits, is not one of them.
    const kind = Object.hasOwn(command.options, option) ? command.options[option] : undefined;
    if (!kind) throw wrong(`unknown option --${option}`);
    if (kind === 'string' && (typeof value !== 'string' || valueless.has(option)))
      throw wrong(`--${option} needs a value`);
    if (kind === 'boolean' && value !== true) throw wrong(`--${option} takes no value`);
  }
  for (const option of command.required ?? []) {
    if (!values[option]) throw wrong(`--${option} is required`);
  }
  if (args.length < command.args.length) throw wrong(`${command.args[args.length]} is missing`);
  if (args.length > command.args.length)
    throw wrong(`unexpected argument ${JSON.stringify(args[command.args.length])}`);
  return {
    command,
    invocation: {
      args,
      text: (option) => {
        const value = values[option];
        return typeof value === 'string' ? value : '';
      },
      flag: (option) => values[option] === true,
    },
  };
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  let baseUrl = '';
  try {
    const { command, invocation } = parse(argv);
    baseUrl = command.serviceUrl(invocation);
    for (const line of await command.run(invocation, createGrpcTransport({ baseUrl }))) console.log(line);
    return 0;
  } catch (err) {
    const failure = asFailure(err, baseUrl);
    for (const line of failureLines(failure)) console.error(line);
    return failure.exitCode;
  }
}

process.exitCode = await main(process.argv.slice(2));
