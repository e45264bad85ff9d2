// Which failures mean the database cannot serve, what callers get for them, and how an outage is logged: once
// when it starts, once when it ends with the calls it failed, and per call at debug only.

import { Writable } from 'node:stream';
import { ErrorInfoSchema } from '@billing/proto/google/rpc/error_details_pb';
import { Code, ConnectError, type UnaryRequest } from '@connectrpc/connect';
import { describe, expect, test } from '@jest/globals';
import { pino } from 'pino';
import {
  errorInterceptor,
  isDatabaseUnavailable,
  isDatabaseUnreachable,
  toConnectError,
  UnavailableError,
} from '../src/errors.ts';
import { trackOutage } from '../src/outage.ts';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('database failures', () => {
  test.each([
    ['a refused connection', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['a reset connection', withCode('read ECONNRESET', 'ECONNRESET')],
    ['a connection ended by a crash', new Error('Connection terminated unexpectedly')],
    ['no connection made in time', new Error('Connection terminated due to connection timeout')],
    ['no pool connection free in time', new Error('timeout exceeded when trying to connect')],
    ['a statement unanswered', withCode('the database did not answer within 6000 ms', 'ETIMEDOUT')],
    ['a server shutting down', withCode('terminating connection due to administrator command', '57P01')],
    ['a crashed server', withCode('terminating connection because of crash of another server process', '57P02')],
    ['a server starting', withCode('the database system is starting up', '57P03')],
    ['a connection exception', withCode('connection failure', '08006')],
    ['no connection slot', withCode('sorry, too many clients already', '53300')],
    [
      'a wrapped one',
      new UnavailableError('the database is unavailable', { cause: new Error('Connection terminated') }),
    ],
    ['an aggregate of refusals', new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], '')],
    // MikroORM's DriverException copies the driver error's own properties, its code among them.
    [
      'one copied by the ORM',
      Object.assign(new Error('read ECONNRESET'), { name: 'DriverException', code: 'ECONNRESET' }),
    ],
  ])('%s: the database is unreachable', (_what, err) => {
    expect([isDatabaseUnreachable(err), isDatabaseUnavailable(err)]).toEqual([true, true]);
  });

  test.each([
    ['a statement past statement_timeout', withCode('canceling statement due to statement timeout', '57014')],
    ['a lock past lock_timeout', withCode('canceling statement due to lock timeout', '55P03')],
    ['a pool closed as the process stops', new Error('Cannot use a pool after calling end on the pool')],
  ])('%s: unavailable, though no outage', (_what, err) => {
    expect([isDatabaseUnreachable(err), isDatabaseUnavailable(err)]).toEqual([false, true]);
  });

  test.each([
    ['a unique violation', withCode('duplicate key value violates unique constraint', '23505')],
    ['a missing table', withCode('relation "x" does not exist', '42P01')],
    ['a bug', new TypeError("Cannot read properties of undefined (reading 'id')")],
  ])('%s: not the database being unavailable', (_what, err) => {
    expect([isDatabaseUnreachable(err), isDatabaseUnavailable(err)]).toEqual([false, false]);
  });

  test('callers get UNAVAILABLE with its reason, and never the driver message', () => {
    const mapped = toConnectError(new Error('Connection terminated unexpectedly'), 'billing.notes');
    expect([mapped.code, mapped.rawMessage]).toEqual([Code.Unavailable, 'the database is unavailable; retry later']);
    expect(mapped.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: 'UNAVAILABLE', domain: 'billing.notes' });
    expect(toConnectError(withCode('canceling statement due to statement timeout', '57014'), 'd').code).toBe(
      Code.Unavailable,
    );
    expect(toConnectError(new TypeError('x is undefined'), 'd').code).toBe(Code.Internal);
  });
});

/** A logger writing to memory, at debug, and the lines it wrote, parsed. */
function captured() {
  const lines: { level: number; msg: string; [key: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines, said: (msg: string) => lines.filter((l) => l.msg === msg) };
}

describe('an outage', () => {
  const refused = withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED');

  test('is logged when it starts and when it ends, with the calls it failed', () => {
    const { logger, said } = captured();
    let now = 0;
    const outage = trackOutage('database', logger, () => now);
    now = 10;
    outage.unreachable(refused, 9);
    outage.unreachable(refused, 10);
    outage.callFailed(refused, 5);
    outage.callFailed(refused, 10);
    // A statement issued before the outage began that answers now does not end it.
    outage.reachable(8);
    expect(outage.ongoing).toBe(true);
    now = 2_010;
    outage.reachable(2_000);
    expect(outage.ongoing).toBe(false);
    expect(said('database unreachable')).toEqual([
      expect.objectContaining({ level: 40, error: { message: refused.message, code: 'ECONNREFUSED' } }),
    ]);
    expect(said('database reachable again')).toEqual([
      expect.objectContaining({ level: 40, failedCalls: 2, outageMs: 2_000 }),
    ]);
  });

  test('a statement stuck through it that fails after it ended does not start another', () => {
    const { logger, said } = captured();
    let now = 0;
    const outage = trackOutage('database', logger, () => now);
    outage.unreachable(refused, 0);
    now = 100;
    outage.reachable(50);
    outage.unreachable(refused, 20);
    outage.callFailed(refused, 30);
    expect(outage.ongoing).toBe(false);
    now = 200;
    outage.unreachable(refused, 150);
    expect(said('database unreachable')).toHaveLength(2);
  });
});

describe('the error interceptor', () => {
  const request = {
    service: { typeName: 'billing.notes.v1.NoteService' },
    method: { name: 'GetNote' },
    stream: false,
    message: {},
    header: new Headers(),
  } as unknown as UnaryRequest;

  /** Runs one call that fails with `err` through the interceptor. */
  async function fail(interceptor: ReturnType<typeof errorInterceptor>, err: unknown): Promise<ConnectError> {
    const call = interceptor(async () => {
      throw err;
    });
    return call(request).then(
      () => {
        throw new Error('the call succeeded');
      },
      (mapped: unknown) => mapped as ConnectError,
    );
  }

  test('counts the calls an unreachable database fails, logging each at debug', async () => {
    const { logger, lines, said } = captured();
    const outage = trackOutage('database', logger);
    const interceptor = errorInterceptor('billing.notes', logger, { outage });
    const answers = [
      await fail(interceptor, new Error('Connection terminated unexpectedly')),
      await fail(
        interceptor,
        new UnavailableError('the database is unavailable', { cause: withCode('read ECONNRESET', 'ECONNRESET') }),
      ),
      await fail(interceptor, withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')),
      // Past its deadline while the outage lasts, a call is the outage's too.
      await fail(interceptor, new ConnectError('the operation timed out', Code.DeadlineExceeded)),
    ];
    expect(answers.map((a) => a.code)).toEqual([
      Code.Unavailable,
      Code.Unavailable,
      Code.Unavailable,
      Code.DeadlineExceeded,
    ]);
    outage.reachable(performance.now());
    expect(said('database unreachable')).toHaveLength(1);
    expect(said('database reachable again')).toEqual([expect.objectContaining({ failedCalls: 4 })]);
    expect(said('rpc failed by a database outage').map((l) => l.level)).toEqual([20, 20, 20, 20]);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });

  test('a streamed answer that fails once it has begun is mapped and counted as a call is', async () => {
    const { logger, said } = captured();
    const outage = trackOutage('database', logger);
    const interceptor = errorInterceptor('billing.notes', logger, { outage });
    async function* failing() {
      yield 'first';
      throw withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED');
    }
    const call = interceptor(async () => ({ stream: true, message: failing() }) as never);
    const res = (await call(request)) as unknown as { message: AsyncIterable<string> };
    const got: string[] = [];
    const failure = await (async () => {
      try {
        for await (const m of res.message) got.push(m);
      } catch (err) {
        return err as ConnectError;
      }
      throw new Error('the stream ended');
    })();
    expect(got).toEqual(['first']);
    expect(failure.code).toBe(Code.Unavailable);
    expect(outage.ongoing).toBe(true);
    expect(said('rpc failed by a database outage')).toHaveLength(1);
  });

  test("another service's unreachable answer (a ConnectError caused by ECONNREFUSED) is no database outage", async () => {
    const { logger, said } = captured();
    const outage = trackOutage('database', logger);
    const interceptor = errorInterceptor('billing.notes', logger, { outage });
    const catalogDown = new ConnectError('connect ECONNREFUSED', Code.Unavailable, undefined, undefined, {
      cause: withCode('connect ECONNREFUSED 127.0.0.1:7101', 'ECONNREFUSED'),
    });
    const answer = await fail(interceptor, new UnavailableError('the catalog is unavailable', { cause: catalogDown }));
    expect(answer.code).toBe(Code.Unavailable);
    expect(outage.ongoing).toBe(false);
    expect(said('database unreachable')).toEqual([]);
    expect(said('rpc refused')).toEqual([expect.objectContaining({ level: 30, reason: 'UNAVAILABLE' })]);
  });

  test("outside an outage, a call past its deadline is the protocol's refusal (debug), and a bug an error with its stack", async () => {
    const { logger, said } = captured();
    const interceptor = errorInterceptor('billing.notes', logger, { outage: trackOutage('database', logger) });
    await fail(interceptor, new ConnectError('the operation timed out', Code.DeadlineExceeded));
    await fail(interceptor, new TypeError('x is undefined'));
    expect(said('rpc refused by the protocol')).toEqual([
      expect.objectContaining({ level: 20, code: 'DeadlineExceeded' }),
    ]);
    const [bug] = said('rpc failed unexpectedly');
    expect(bug).toMatchObject({ level: 50, err: { message: 'x is undefined' } });
    expect(String((bug?.err as { stack?: unknown } | undefined)?.stack)).toContain('TypeError');
  });
});
