// What bounding costs a log line: the kit's logger (every value bounded, URLs redacted) against pino with the
// same options and no bounding (the baseline, the kit's logger as it was before), on the lines services write
// (a refused call through a request's child logger, a plain line, a warning with an error), same process,
// alternating rounds. Thread CPU time, as the machine may be shared; the median round.
import { pino } from 'pino';
import { createLogger, type Logger, REDACTED_PATHS } from '../src/log.ts';

const LINES = Number(process.env.BENCH_LOG_LINES ?? 50_000);
const ROUNDS = Number(process.env.BENCH_LOG_ROUNDS ?? 21);

let written = 0;
const destination = {
  write(line: string) {
    written += line.length;
  },
};
const loggers: Record<'baseline' | 'bounded', Logger> = {
  baseline: pino(
    {
      level: 'info',
      base: { service: 'usage' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  ),
  bounded: createLogger({ service: 'usage', level: 'info', destination }),
};

const err = new Error('connection terminated unexpectedly');
const lines: Record<string, (logger: Logger) => void> = {
  'refused call': (logger) =>
    logger
      .child({ method: 'billing.usage.v1.UsageService/IngestEvents', requestId: '01JEXAMPLE0000000000000000' })
      .info(
        { code: 'NotFound', reason: 'METER_NOT_FOUND', message: 'meter "api_calls" not found', detail: 'x', ms: 3 },
        'rpc refused',
      ),
  plain: (logger) => logger.info({ pruned: 120 }, 'published outbox rows past the retention deleted'),
  'with an error': (logger) => logger.warn({ err, retryInMs: 500 }, 'outbox relay could not publish; will retry'),
};

const cpuMicros = () => {
  const usage = process.threadCpuUsage();
  return usage.user + usage.system;
};
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

for (const [name, write] of Object.entries(lines)) {
  const perLine: Record<keyof typeof loggers, number[]> = { baseline: [], bounded: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order: (keyof typeof loggers)[] = round % 2 === 0 ? ['baseline', 'bounded'] : ['bounded', 'baseline'];
    for (const which of order) {
      const started = cpuMicros();
      for (let i = 0; i < LINES; i++) write(loggers[which]);
      perLine[which].push((cpuMicros() - started) / LINES);
    }
  }
  const [baseline, bounded] = [median(perLine.baseline), median(perLine.bounded)];
  console.log(
    `${name.padEnd(14)} baseline ${baseline.toFixed(2)} µs/line, bounded ${bounded.toFixed(2)} µs/line (x${(bounded / baseline).toFixed(3)})`,
  );
}
if (written === 0) throw new Error('nothing was written');
