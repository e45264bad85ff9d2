// Calendar arithmetic in IANA time zones with the platform's Intl data: local midnights and month starts as
// UTC instants, across DST changes. (A local time skipped by a DST change resolves to the first instant after
// the gap.)

/** Whether `zone` is an IANA time zone this runtime knows. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return zone.length > 0;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** A wall-clock date and time in some zone (month 1-12). */
export interface LocalDateTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The wall-clock reading of `instant` in `zone`. */
export function toLocal(instant: Date, zone: string): LocalDateTime {
  const parts: Record<string, number> = {};
  for (const p of formatter(zone).formatToParts(instant)) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return {
    year: parts.year ?? 0,
    month: parts.month ?? 1,
    day: parts.day ?? 1,
    hour: parts.hour ?? 0,
    minute: parts.minute ?? 0,
    second: parts.second ?? 0,
  };
}

function wallAsUtc(local: LocalDateTime): number {
  return Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute, local.second);
}

/** The instant at which the clocks of `zone` read `local` (the first one after a DST gap). */
export function fromLocal(local: LocalDateTime, zone: string): Date {
  const target = wallAsUtc(local);
  // Two passes: the offset at a first guess, then the offset at the corrected instant.
  let guess = target;
  for (let i = 0; i < 2; i++) {
    const offset = wallAsUtc(toLocal(new Date(guess), zone)) - guess;
    guess = target - offset;
  }
  const wall = (t: number) => wallAsUtc(toLocal(new Date(t), zone));
  if (wall(guess) === target) return new Date(guess);
  // In a DST gap the wall time does not exist: find the first instant whose wall time is past it (the end of
  // the gap), between the readings with the offsets before and after the change.
  let lo = Math.min(guess, target - (wall(guess + 6 * 3_600_000) - (guess + 6 * 3_600_000)));
  let hi = Math.max(guess, target - (wall(guess - 6 * 3_600_000) - (guess - 6 * 3_600_000)));
  if (wall(lo) >= target || wall(hi) < target) return new Date(guess);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (wall(mid) >= target) hi = mid;
    else lo = mid;
  }
  return new Date(hi);
}

/** The wall time `days` calendar days after `local` (negative for earlier), at the same time of day. */
function shiftDays(local: LocalDateTime, days: number): LocalDateTime {
  const day = new Date(Date.UTC(local.year, local.month - 1, local.day + days));
  return { ...local, year: day.getUTCFullYear(), month: day.getUTCMonth() + 1, day: day.getUTCDate() };
}

/** The instant `days` local days after `instant` in `zone`, at the same local time (across DST changes). */
export function addLocalDays(instant: Date, zone: string, days: number): Date {
  return fromLocal(shiftDays(toLocal(instant, zone), days), zone);
}

/** Local midnight of the day containing `instant`, `days` days later (negative for earlier). */
export function startOfLocalDay(instant: Date, zone: string, days = 0): Date {
  return fromLocal({ ...shiftDays(toLocal(instant, zone), days), hour: 0, minute: 0, second: 0 }, zone);
}

/** Local midnight of the first day of the month containing `instant`, `months` months later. */
export function startOfLocalMonth(instant: Date, zone: string, months = 0): Date {
  const local = toLocal(instant, zone);
  const month = new Date(Date.UTC(local.year, local.month - 1 + months, 1));
  return fromLocal(
    { year: month.getUTCFullYear(), month: month.getUTCMonth() + 1, day: 1, hour: 0, minute: 0, second: 0 },
    zone,
  );
}
