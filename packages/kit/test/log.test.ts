// The process logger bounds whatever a call site gives it and never writes a URL's credentials: the lines it
// writes to its stream, as an operator reads them.
import { describe, expect, test } from '@jest/globals';
import { createLogger, LOGGED_TEXT_MAX, type Logger } from '../src/log.ts';

const FIVE_MIB = 5 * 1024 * 1024;
// Lines of any log call stay well under this (a bounded line of a few dozen fields).
const LINE_BOUND = 100_000;

/** A logger writing to memory, and the lines it wrote, parsed. */
function capturedLogger(): { logger: Logger; lines: string[]; entries: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const logger = createLogger({ service: 'test', level: 'info', destination: { write: (line) => lines.push(line) } });
  return { logger, lines, entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

const clipped = (length: number) => `… (${length} chars)`;

describe('every logged value is bounded', () => {
  test('a 5 MiB string field is logged as a prefix, an ellipsis and its length', () => {
    const { logger, lines, entries } = capturedLogger();
    logger.info({ requestId: 'r'.repeat(FIVE_MIB) }, 'rpc refused');
    const [entry] = entries();
    expect(lines[0]?.length).toBeLessThan(LINE_BOUND);
    const requestId = String(entry?.requestId);
    expect(requestId).toHaveLength(LOGGED_TEXT_MAX);
    expect(requestId.endsWith(clipped(FIVE_MIB))).toBe(true);
    expect(requestId.startsWith('rrrr')).toBe(true);
  });

  test("a child's (and a child's child's) 5 MiB binding and a 5 MiB message are bounded alike", () => {
    const { logger, lines, entries } = capturedLogger();
    const child = logger.child({ requestId: 'r'.repeat(FIVE_MIB) });
    child.info('m'.repeat(FIVE_MIB));
    child.child({ consumer: 'c'.repeat(FIVE_MIB) }).info('from the grandchild');
    expect(lines.map((line) => line.length).every((length) => length < LINE_BOUND)).toBe(true);
    const [entry, grandchildEntry] = entries();
    expect(String(entry?.requestId).endsWith(clipped(FIVE_MIB))).toBe(true);
    expect(String(entry?.msg).endsWith(clipped(FIVE_MIB))).toBe(true);
    expect(String(grandchildEntry?.consumer).endsWith(clipped(FIVE_MIB))).toBe(true);
  });

  test('an error with a 5 MiB message keeps its type and the frames of its stack', () => {
    const { logger, lines, entries } = capturedLogger();
    const err = new TypeError('e'.repeat(FIVE_MIB));
    logger.error({ err }, 'rpc failed unexpectedly');
    logger.error(err);
    expect(lines.map((line) => line.length).every((length) => length < LINE_BOUND)).toBe(true);
    const [withMessage, alone] = entries() as { err: { type: string; message: string; stack: string }; msg: string }[];
    expect(withMessage?.msg).toBe('rpc failed unexpectedly');
    expect(withMessage?.err.type).toBe('TypeError');
    expect(withMessage?.err.message).toHaveLength(LOGGED_TEXT_MAX);
    expect(withMessage?.err.message.endsWith(clipped(FIVE_MIB))).toBe(true);
    const [first, ...frames] = withMessage?.err.stack.split('\n') ?? [];
    expect(first?.startsWith('TypeError: eee')).toBe(true);
    expect(first?.endsWith(clipped(FIVE_MIB + 'TypeError: '.length))).toBe(true);
    expect(frames[0]).toMatch(/^ {4}at .*log\.test\.ts:\d+:\d+/);
    // Logged alone, the error's message is the line's message: bounded too.
    expect(alone?.msg.endsWith(clipped(FIVE_MIB))).toBe(true);
  });

  test('a stack of a million lines keeps its first lines and says how long it was', () => {
    const { logger, lines, entries } = capturedLogger();
    const err = new Error('many lines');
    err.stack = `Error: many lines\n${'    at somewhere (file.ts:1:1)\n'.repeat(1_000_000)}`;
    logger.error({ err }, 'deep recursion');
    expect(lines[0]?.length).toBeLessThan(LINE_BOUND);
    const stack = (entries()[0] as { err: { stack: string } }).err.stack.split('\n');
    expect(stack.slice(0, 2)).toEqual(['Error: many lines', '    at somewhere (file.ts:1:1)']);
    expect(stack.at(-1)).toBe(clipped(err.stack.length));
  });

  test('a nested, wide or circular object is bounded in depth, entries and size', () => {
    const { logger, lines, entries } = capturedLogger();
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    let deep: Record<string, unknown> = { leaf: true };
    for (let level = 0; level < 50; level++) deep = { level, child: deep };
    const wide = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`field${i}`, i]));
    const many = Array.from({ length: 10_000 }, () => 'x'.repeat(1_000));
    logger.info({ bytes: Buffer.alloc(FIVE_MIB), circular, deep, wide, many, after: 'the line is full' }, 'shapes');
    expect(lines[0]?.length).toBeLessThan(LINE_BOUND);
    const [entry] = entries() as Record<string, unknown>[];
    const depthOf = (value: unknown): number =>
      typeof value === 'object' && value !== null ? 1 + Math.max(0, ...Object.values(value).map(depthOf)) : 0;
    expect(depthOf(entry?.deep)).toBeLessThan(10);
    expect(JSON.stringify(entry?.circular)).toContain('"[Object]"');
    const loggedWide = entry?.wide as Record<string, unknown>;
    expect(loggedWide.field0).toBe(0);
    expect(loggedWide['…']).toBe('9900 more fields');
    const loggedMany = entry?.many as string[];
    expect(loggedMany[0]).toBe('x'.repeat(1_000));
    // The strings fill the line's budget before a hundred items; the field after them is left out.
    expect(loggedMany.length).toBeLessThan(100);
    expect(loggedMany.at(-1)).toMatch(/^… \d+ more items$/);
    expect(entry?.after).toBeUndefined();
    expect(entry?.['…']).toBe('1 more field');
    expect(entry?.bytes).toBe(`[Buffer of ${FIVE_MIB} bytes]`);
  });

  test('a line within the bounds is written as given, and the given object is left as it was', () => {
    const { logger, entries } = capturedLogger();
    const fields = { code: 'NotFound', reason: 'METER_NOT_FOUND', ms: 3, tags: ['a', 'b'], nested: { at: 1 } };
    const given = structuredClone(fields);
    logger.child({ method: 'billing.usage.v1.UsageService/IngestEvents' }).info(fields, 'rpc refused');
    expect(entries()[0]).toMatchObject({
      method: 'billing.usage.v1.UsageService/IngestEvents',
      ...fields,
      msg: 'rpc refused',
    });
    expect(fields).toEqual(given);
  });
});

describe('no logged string shows the credentials of a URL', () => {
  const PASSWORD = 'S3cr3tPassw0rd';
  const TOKEN = 'n4ts-t0ken';

  test('in a field, a message, an error and a binding', () => {
    const { logger, lines, entries } = capturedLogger();
    const url = `postgres://billing:${PASSWORD}@db.internal:5432/usage?sslpassword=${PASSWORD}&application_name=usage`;
    logger
      .child({ servers: [`nats://${TOKEN}@nats-1:4222`, `nats://nats:${PASSWORD}@nats-2:4222`] })
      .warn({ database: url, err: new Error(`connect ECONNREFUSED ${url}`) }, `cannot reach ${url}`);
    expect(lines.join('')).not.toContain(PASSWORD);
    expect(lines.join('')).not.toContain(TOKEN);
    expect(lines.join('')).not.toContain('billing:');
    const redacted = 'postgres://[redacted]@db.internal:5432/usage?sslpassword=[redacted]&application_name=usage';
    expect(entries()[0]).toMatchObject({
      servers: ['nats://[redacted]@nats-1:4222', 'nats://[redacted]@nats-2:4222'],
      database: redacted,
      err: { message: `connect ECONNREFUSED ${redacted}` },
      msg: `cannot reach ${redacted}`,
    });
  });

  test('in a libpq connection string, which has no URL', () => {
    const { logger, lines } = capturedLogger();
    logger.info({ dsn: `host=db password=${PASSWORD} dbname=usage` });
    expect(lines[0]).not.toContain(PASSWORD);
    expect(lines[0]).toContain('password=[redacted]');
  });

  test('in a long string cut inside the URL', () => {
    const { logger, lines } = capturedLogger();
    // The cut falls inside the password, before the `@` that would mark it as one.
    const text = `${'x'.repeat(LOGGED_TEXT_MAX - 40)} postgres://billing:${PASSWORD.repeat(10)}@db.internal/usage`;
    logger.info({ text });
    expect(lines[0]).not.toContain(PASSWORD.slice(0, 4));
    expect(lines[0]).toContain(' postgres://[redacted]…');
  });

  test('a URL without credentials is logged as it was', () => {
    const { logger, entries } = capturedLogger();
    const urls = [
      'http://127.0.0.1:7101/billing.catalog.v1.CatalogService/GetPlan?plan_key=team&limit=5',
      'nats://nats-1:4222,nats://[::1]:4222',
      'at file:///app/node_modules/.pnpm/pg-pool@3.14.0_pg@8.23.0/node_modules/pg-pool/index.js:45:11',
      'https://github.com/user@example.com',
    ];
    logger.info({ urls });
    expect(entries()[0]?.urls).toEqual(urls);
  });
});
