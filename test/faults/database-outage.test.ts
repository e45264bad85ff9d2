// PostgreSQL taken away under the three services, each a process of its own under load: a crash (immediate
// shutdown: every backend killed, no checkpoint), a fast stop (sessions ended, then the server exits), and a
// freeze (every process stopped: connections stay open and nothing answers). Each fault runs one scenario, on
// a platform of its own: the fault, PostgreSQL given back, then the fault again under a SIGTERM. What a client,
// a Kubernetes probe, PostgreSQL and an operator reading the logs see at each step is one test each; the steps
// run in order, each test driving the next one. The scenarios run one after the other, in one file, so that
// no two platforms share the machine's cores at once.

import type { ServiceName } from '@billing/test/harness';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { type CallRecord, listedEventIds, type PlatformLoad, startPlatformLoad } from './load.ts';
import {
  ERROR,
  type LogLine,
  logLines,
  type ProbeOutcome,
  readUntil,
  readWithServerDeadline,
  tally,
} from './observe.ts';
import {
  DATABASE_PASSWORD,
  type FaultPlatform,
  type HealthAnswer,
  NATS_PASSWORD,
  POOL_SIZE,
  readinessOf,
  SERVICES,
  startFaultPlatform,
} from './platform.ts';

/** The faults of PostgreSQL a service must ride out. */
type DatabaseFault = 'crash' | 'stop' | 'freeze';

const FAULTS: Record<
  DatabaseFault,
  { what: string; begin(platform: FaultPlatform): Promise<void>; end(platform: FaultPlatform): Promise<void> }
> = {
  crash: {
    what: 'crashes (pg_ctl stop -m immediate)',
    begin: (platform) => platform.postgres.crash(),
    end: (platform) => platform.postgres.start(),
  },
  stop: {
    what: 'stops (pg_ctl stop -m fast)',
    begin: (platform) => platform.postgres.stop(),
    end: (platform) => platform.postgres.start(),
  },
  freeze: {
    what: 'freezes (SIGSTOP of every PostgreSQL process)',
    begin: async (platform) => platform.postgres.freeze(),
    end: async (platform) => platform.postgres.thaw(),
  },
};

/** DATABASE_TIMEOUT of the services: every database wait ends past it. */
const DATABASE_TIMEOUT_MS = 2_000;
/** SHUTDOWN_GRACE of the services. */
const SHUTDOWN_GRACE_MS = 3_000;
/** What a process may take past SHUTDOWN_GRACE to exit after SIGTERM: flushing its logs, on a loaded machine. */
const EXIT_MARGIN_MS = 3_000;
/**
 * The deadline of the probes: shorter than DATABASE_TIMEOUT, so that against a frozen database (where nothing
 * else ends a call sooner) the deadline is what answers.
 */
const DEADLINE_MS = 1_000;
/** What a probe may take past its deadline to answer, on a loaded machine: enough to show it did not hang. */
const ANSWER_MARGIN_MS = 3_000;

/** The environment of every service process in these scenarios. */
const ENVIRONMENT = {
  DATABASE_TIMEOUT: `${DATABASE_TIMEOUT_MS}ms`,
  DATABASE_START_TIMEOUT: '30s',
  SHUTDOWN_GRACE: `${SHUTDOWN_GRACE_MS}ms`,
  LOG_LEVEL: 'info',
};

/** Each worker's calls that started at or after `from` and have ended. */
function endedSince(load: PlatformLoad, from: number): Record<string, CallRecord[]> {
  return Object.fromEntries(
    load.workers.map((worker) => [
      worker,
      load.calls.filter((c) => c.worker === worker && c.startedAt >= from && c.endedAt !== undefined),
    ]),
  );
}

const distinct = <T>(values: T[]) => [...new Set(values)].sort();
const outcomeName = (call: CallRecord) => (typeof call.outcome === 'number' ? Code[call.outcome] : call.outcome);

/** Declares the scenario of one fault. */
function describeDatabaseOutage(fault: DatabaseFault): void {
  const { what, begin, end } = FAULTS[fault];

  describe(`when PostgreSQL ${what} under load`, () => {
    let platform: FaultPlatform;
    let load: PlatformLoad;
    const liveness: { service: ServiceName; answer: HealthAnswer; at: number }[] = [];
    let watchingLiveness: Promise<void> | undefined;
    let livenessWatched = true;
    const probes: ProbeOutcome[] = [];
    const outage = { from: 0, to: 0 };
    // When the services were sent SIGTERM: calls cut off by their exit after it are not theirs to answer.
    let terminatedAt = Number.POSITIVE_INFINITY;

    beforeAll(async () => {
      platform = await startFaultPlatform(ENVIRONMENT);
      load = startPlatformLoad(platform.processes, fault);
      // Liveness is read throughout, as the kubelet reads it, until the services are sent SIGTERM.
      watchingLiveness = (async () => {
        while (livenessWatched) {
          await Promise.all(
            SERVICES.map(async (service) => {
              liveness.push({ service, answer: await platform.health[service]('liveness'), at: Date.now() });
            }),
          );
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      // The load runs: every worker has had a call succeed.
      await readUntil(
        () => endedSince(load, 0),
        (calls) => Object.values(calls).every((c) => c.some((call) => call.outcome === 'ok')),
        20_000,
      );
    }, 120_000);

    afterAll(async () => {
      livenessWatched = false;
      await watchingLiveness;
      await load?.stop();
      await platform?.destroy();
    }, 60_000);

    test('readiness turns NOT_SERVING on every service, and liveness stays SERVING', async () => {
      await begin(platform);
      outage.from = Date.now();
      const readiness = await readUntil(
        () => Promise.all(SERVICES.map((s) => readinessOf(platform.health[s], s))),
        (answers) => answers.flat().every((a) => a === 'NOT_SERVING'),
        20_000,
      );
      expect(readiness).toEqual(SERVICES.map(() => ['NOT_SERVING', 'NOT_SERVING', 'NOT_SERVING']));
      expect(await Promise.all(SERVICES.map((s) => platform.health[s]('liveness')))).toEqual(
        SERVICES.map(() => 'SERVING'),
      );
    }, 30_000);

    test(`a call with a ${DEADLINE_MS} ms deadline, over gRPC or Connect, answers within it while the outage lasts`, async () => {
      const answers = await Promise.all(
        SERVICES.flatMap((service) =>
          (['gRPC', 'Connect'] as const).map((protocol) =>
            readWithServerDeadline(platform.processes[service], protocol, DEADLINE_MS),
          ),
        ),
      );
      probes.push(...answers);
      // Against a frozen database only the deadline can end the call first; a crashed or stopped one refuses
      // connections at once, which may answer UNAVAILABLE before the deadline passes.
      const expected = fault === 'freeze' ? ['DeadlineExceeded'] : ['DeadlineExceeded', 'Unavailable'];
      const wrong = answers.filter((a) => !expected.includes(a.outcome) || a.ms >= DEADLINE_MS + ANSWER_MARGIN_MS);
      expect(wrong).toEqual([]);
    }, 30_000);

    test('calls during the outage answer UNAVAILABLE, each without waiting for the outage to end', async () => {
      // Every worker keeps calling: at least two calls each, started after PostgreSQL went away, have answered.
      const answered = await readUntil(
        () => endedSince(load, outage.from),
        (calls) => Object.values(calls).every((c) => c.length >= 2),
        20_000,
      );
      const outcomes = Object.fromEntries(
        Object.entries(answered).map(([worker, calls]) => [worker, distinct(calls.map(outcomeName))]),
      );
      expect(outcomes).toEqual(Object.fromEntries(load.workers.map((w) => [w, ['Unavailable']])));
    }, 30_000);

    test('after PostgreSQL is back, every service turns SERVING again and its calls succeed', async () => {
      await end(platform);
      outage.to = Date.now();
      const readiness = await readUntil(
        () => Promise.all(SERVICES.map((s) => readinessOf(platform.health[s], s))),
        (answers) => answers.flat().every((a) => a === 'SERVING'),
        30_000,
      );
      expect(readiness).toEqual(SERVICES.map(() => ['SERVING', 'SERVING', 'SERVING']));
      const succeeded = await readUntil(
        () => endedSince(load, outage.to),
        (calls) => Object.values(calls).every((c) => c.some((call) => call.outcome === 'ok')),
        20_000,
      );
      const workersSucceeding = Object.entries(succeeded)
        .filter(([, calls]) => calls.some((c) => c.outcome === 'ok'))
        .map(([worker]) => worker);
      expect(workersSucceeding).toEqual(load.workers);
    }, 60_000);

    test('no service process ended through the outage', () => {
      expect(SERVICES.filter((s) => !platform.processes[s].running())).toEqual([]);
    });

    test('the outage is logged in a few lines, none at error level and none per failed call', () => {
      const during = (line: LogLine) => line.time >= outage.from && line.time <= outage.to;
      const summary = SERVICES.map((service) => {
        const lines = logLines(platform.processes[service]).filter(during);
        const failedCalls = load.calls.filter(
          (c) => c.service === service && c.startedAt >= outage.from && c.outcome === Code.Unavailable,
        ).length;
        // A line naming the RPC it answered UNAVAILABLE is a line per call; the outage is told once when it
        // starts, and once when it ends.
        const perCall = lines.filter((l) => typeof l.method === 'string' && /^unavailable$/i.test(String(l.code)));
        return {
          service,
          errors: tally(lines.filter((l) => l.level >= ERROR).map((l) => String(l.msg))),
          perCallLines:
            perCall.length <= 2
              ? 'at most 2'
              : tally(perCall.map((l) => `${l.msg}: ${l.method}: ${String(l.message)}`)),
          failedCalls: failedCalls > 3 ? 'several' : failedCalls,
        };
      });
      expect(summary).toEqual(
        SERVICES.map((service) => ({ service, errors: {}, perCallLines: 'at most 2', failedCalls: 'several' })),
      );
    });

    test(`each service holds at most its pool of ${POOL_SIZE} connections, and usage's whole pool serves again`, async () => {
      const held = await readUntil(
        () => platform.connectionsHeld(),
        (counts) => Object.values(counts).every((n) => n <= POOL_SIZE),
        15_000,
      );
      expect(SERVICES.filter((s) => held[s] > POOL_SIZE).map((s) => `${s}: ${held[s]}`)).toEqual([]);
      // A connection that died with the outage and was never given back would hold its slot of the pool for good.
      // With usage's table of events locked, calls wait on the lock, each on a connection of the pool: once more
      // of them are in flight than the pool has connections, PostgreSQL sees as many waiting as the pool can hold.
      expect(await lockWaitersAtMost(platform)).toBe(POOL_SIZE);
    }, 60_000);

    test('counts stay exact: usage lists every event the producer saw stored, once, and no other', async () => {
      const sent = await load.stopProducer();
      const listed = await listedEventIds(platform.processes.usage, load.customer);
      const listedSet = new Set(listed);
      const missing = [...load.confirmed].filter((id) => !listedSet.has(id));
      const unexpected = listed.filter((id) => !load.confirmed.has(id));
      expect(load.refused).toEqual([]);
      expect({ listed: listed.length, distinct: listedSet.size, confirmed: load.confirmed.size }).toEqual({
        listed: sent,
        distinct: sent,
        confirmed: sent,
      });
      expect({ missing: missing.slice(0, 5), unexpected: unexpected.slice(0, 5) }).toEqual({
        missing: [],
        unexpected: [],
      });
      // The producer went through the outage: some of its batches were answered UNAVAILABLE and sent again.
      expect(load.calls.some((c) => c.worker === 'usage producer' && c.outcome === Code.Unavailable)).toBe(true);
    }, 60_000);

    test(`on SIGTERM while PostgreSQL ${fault === 'freeze' ? 'is frozen' : 'is down'} again, every service exits within SHUTDOWN_GRACE`, async () => {
      livenessWatched = false;
      await watchingLiveness;
      await begin(platform);
      // Calls in flight on the database that went away when the signal comes.
      const inFlight = SERVICES.map((s) => readWithServerDeadline(platform.processes[s], 'gRPC', 30_000));
      terminatedAt = Date.now();
      const processes = SERVICES.map((s) => platform.processes[s]);
      for (const p of processes) void p.signal('SIGTERM');
      // A process that outlives its grace well past the margin is left to afterAll, which kills it.
      const exits = await Promise.all(processes.map((p) => p.exitWithin(SHUTDOWN_GRACE_MS + EXIT_MARGIN_MS * 2)));
      const summary = exits.map((exit, i) => ({
        service: SERVICES[i],
        code: exit?.code,
        signal: exit?.signal,
        inTime: exit && exit.at - terminatedAt < SHUTDOWN_GRACE_MS + EXIT_MARGIN_MS ? 'yes' : 'no',
      }));
      await Promise.all(processes.map((p) => p.kill()));
      await Promise.all(inFlight);
      await load.stop();
      expect(summary).toEqual(SERVICES.map((service) => ({ service, code: 0, signal: null, inTime: 'yes' })));
    }, 60_000);

    test('liveness answered SERVING on every check until SIGTERM', () => {
      expect(liveness.filter((l) => l.answer !== 'SERVING')).toEqual([]);
      expect(liveness.filter((l) => l.at > outage.from && l.at < outage.to).length).toBeGreaterThan(0);
    });

    test('no call answered INTERNAL or UNKNOWN, and none hung', () => {
      const wrong = load.calls.filter(
        (c) =>
          (c.endedAt ?? 0) < terminatedAt &&
          (c.outcome === Code.Internal || c.outcome === Code.Unknown || c.outcome === 'hung'),
      );
      expect(tally(wrong.map((c) => `${c.rpc}: ${outcomeName(c)} ${c.message ?? ''}`))).toEqual({});
      const wrongProbes = probes.filter((p) => ['Internal', 'Unknown', 'hung'].includes(p.outcome));
      expect(tally(wrongProbes.map((p) => `${p.service} over ${p.protocol}: ${p.outcome} ${p.message ?? ''}`))).toEqual(
        {},
      );
    });

    test('no log line, and no message of an answer, carries a password', () => {
      const texts = [
        ...SERVICES.flatMap((s) => [...platform.processes[s].stdout, ...platform.processes[s].stderr]),
        ...load.calls.map((c) => c.message ?? ''),
        ...probes.map((p) => p.message ?? ''),
      ];
      expect(texts.filter((t) => t.includes(DATABASE_PASSWORD) || t.includes(NATS_PASSWORD))).toEqual([]);
    });
  });
}

/**
 * Holds an exclusive lock on usage's table of events while more reads than the pool has connections are in
 * flight, and returns the most calls PostgreSQL saw waiting on the lock at once (read until it reaches the pool
 * size, for as long as the lock waits last). A lock wait ends past DATABASE_TIMEOUT, so it tries a few times.
 */
async function lockWaitersAtMost(platform: FaultPlatform): Promise<number> {
  const { processes, asAdministrator } = platform;
  let most = 0;
  for (let attempt = 0; attempt < 3 && most < POOL_SIZE; attempt++) {
    most = Math.max(
      most,
      await asAdministrator('usage', async (admin) => {
        await admin.query('begin');
        await admin.query('lock table usage_event in access exclusive mode');
        const reads = Array.from({ length: POOL_SIZE * 2 }, () =>
          readWithServerDeadline(processes.usage, 'gRPC', 30_000),
        );
        let seen = 0;
        await readUntil(
          async () => {
            const { rows } = await admin.query<{ waiting: number }>(
              `select count(*)::int as waiting from pg_stat_activity
                where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`,
            );
            seen = Math.max(seen, rows[0]?.waiting ?? 0);
            return seen;
          },
          (n) => n >= POOL_SIZE,
          DATABASE_TIMEOUT_MS * 2,
        );
        await admin.query('rollback');
        await Promise.all(reads);
        return seen;
      }),
    );
  }
  return most;
}

for (const fault of ['crash', 'stop', 'freeze'] as const) describeDatabaseOutage(fault);
