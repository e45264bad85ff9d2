// Configuration from the environment, read and validated once at start. A missing or malformed setting
// stops the service with one line naming the variable and saying what is wrong, before anything else runs.

/** A bad configuration: its message is the one line printed before exiting. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  /** Every problem found, one per variable (the message joins them). */
  readonly problems: readonly string[];

  constructor(problems: string | readonly string[]) {
    const list = typeof problems === 'string' ? [problems] : problems;
    super(list.join('; '));
    this.problems = list;
  }
}

/** One setting: where it comes from, what it means, its default and how to read it. */
export interface Setting<T> {
  /** Environment variable. */
  env: string;
  /** What it is for (listed in READMEs). */
  description: string;
  /** Value when unset or empty; without a `default` key the setting is required. */
  default?: T;
  /** Reads the raw string; throws an Error whose message says what was expected and what it got. */
  parse(raw: string): T;
  /** How the default is shown in docs, when its value would read badly (a path, a list). */
  shownDefault?: string;
  /** A secret (password, API key): its value never appears in an error message. */
  secret?: boolean;
}

/** A set of settings, by the name the service uses for each. */
export type SettingsSpec = Record<string, Setting<unknown>>;

/** The values read from a spec: one property per setting, typed by its parser. */
export type ConfigOf<S extends SettingsSpec> = { [K in keyof S]: S[K] extends Setting<infer T> ? T : never };

/** Declares a setting, keeping its value type (so that `default` and `parse` must agree). */
export function setting<T>(s: Setting<T>): Setting<T> {
  return s;
}

// The raw value as shown in a message: quoted and escaped, so that a stray newline cannot break the one line.
function shown(raw: string): string {
  return JSON.stringify(raw);
}

// A URL for a message, without its password.
function withoutPassword(url: URL): string {
  if (url.password === '') return url.href;
  const copy = new URL(url.href);
  copy.password = '***';
  return copy.href;
}

const DURATION_UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
type DurationUnit = keyof typeof DURATION_UNITS;

function isDurationUnit(unit: string): unit is DurationUnit {
  return Object.hasOwn(DURATION_UNITS, unit);
}

// Milliseconds back in the largest unit that divides them, so that documented defaults read as written.
function formatDuration(ms: number): string {
  for (const unit of ['h', 'm', 's'] as const) {
    if (ms !== 0 && ms % DURATION_UNITS[unit] === 0) return `${ms / DURATION_UNITS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

function parseInteger(raw: string): number {
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(n)) throw new Error(`expected a whole number, got ${shown(raw)}`);
  return n;
}

function parseDuration(raw: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(raw);
  const unit = match?.[2];
  if (!match || unit === undefined || !isDurationUnit(unit)) {
    throw new Error(`expected a duration such as 250ms, 5s, 2m or 1h, got ${shown(raw)}`);
  }
  const ms = Number(match[1]) * DURATION_UNITS[unit];
  if (!Number.isSafeInteger(ms)) throw new Error(`expected a whole number of milliseconds, got ${shown(raw)}`);
  return ms;
}

function parseUrl(raw: string, schemes: readonly string[]): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // The value may hold a password (postgres://user:secret@...): say only that it is not a URL.
    throw new Error('expected a URL such as scheme://host:port, got something that is not a URL');
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (schemes.length > 0 && !schemes.includes(scheme)) {
    throw new Error(`expected a ${schemes.join(' or ')} URL, got ${shown(withoutPassword(url))}`);
  }
  return url;
}

/** Parsers for the common kinds of settings; each throws an Error saying what it expected and what it got. */
export const parsers = {
  /** Any string. */
  string: (raw: string): string => raw,
  /** A whole number (a safe integer). */
  integer: parseInteger,
  /** A whole number within `min`..`max`, inclusive. */
  integerBetween: (min: number, max: number) =>
    function integerBetween(raw: string): number {
      const n = Number(raw);
      if (!/^-?\d+$/.test(raw) || n < min || n > max) {
        throw new Error(`expected a whole number ${min}-${max}, got ${shown(raw)}`);
      }
      return n;
    },
  /** A TCP port, 0-65535 (0 asks the system for any free port, as tests do). */
  port(raw: string): number {
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n > 65_535) throw new Error(`expected a port number 0-65535, got ${shown(raw)}`);
    return n;
  },
  /** true or false (also 1/0, yes/no, on/off), in any case. */
  boolean(raw: string): boolean {
    const v = raw.toLowerCase();
    if (v === 'true' || v === '1' || v === 'yes' || v === 'on') return true;
    if (v === 'false' || v === '0' || v === 'no' || v === 'off') return false;
    throw new Error(`expected true or false, got ${shown(raw)}`);
  },
  /** A URL with one of the given schemes (any scheme if none is given); returns it as written. */
  url: (...schemes: string[]) =>
    function url(raw: string): string {
      parseUrl(raw, schemes);
      return raw;
    },
  /** A comma-separated list of URLs with one of the given schemes. */
  urls: (...schemes: string[]) =>
    function urls(raw: string): string[] {
      return raw
        .split(',')
        .map((u) => u.trim())
        .filter((u) => u !== '')
        .map((u) => {
          parseUrl(u, schemes);
          return u;
        });
    },
  /** One of a fixed set of strings (an enumeration); the result type is their union. */
  oneOf: <const T extends string>(...values: T[]) =>
    function oneOf(raw: string): T {
      const found = values.find((v) => v === raw);
      if (found === undefined) throw new Error(`expected one of ${values.join(', ')}, got ${shown(raw)}`);
      return found;
    },
  /** A duration such as 250ms, 5s, 1.5m or 2h; returns milliseconds. */
  duration: parseDuration,
};

// A parser's message says what it expected and then what it got; for a secret, only the first half is kept.
function hideValue(why: string, raw: string): string {
  const cut = why.indexOf(', got ');
  const expected = cut === -1 ? 'malformed' : why.slice(0, cut);
  return `${expected.includes(raw) ? 'malformed' : expected} (the value is secret and not shown)`;
}

/**
 * Reads and validates every setting of `spec` from `env`. Unset and empty variables take their default;
 * a required one without a value, or any value its parser refuses, is a ConfigError naming the variable.
 * Every problem is reported at once, on one line, so that a broken deployment is fixed in one go.
 */
export function loadConfig<S extends SettingsSpec>(spec: S, env: NodeJS.ProcessEnv = process.env): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, s] of Object.entries(spec)) {
    const raw = env[s.env];
    if (raw === undefined || raw === '') {
      if (!('default' in s)) problems.push(`${s.env}: required but not set (${s.description})`);
      else out[name] = s.default;
      continue;
    }
    try {
      out[name] = s.parse(raw);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      problems.push(`${s.env}: ${s.secret ? hideValue(why, raw) : why}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

/** One row of a settings table: the variable, its default as shown to people, and what it is for. */
export interface SettingRow {
  /** Environment variable. */
  env: string;
  /** The default, `(required)` when there is none, `(empty)` when it is empty. */
  default: string;
  /** What it is for. */
  description: string;
}

function showDefault(s: Setting<unknown>): string {
  if (s.shownDefault !== undefined) return s.shownDefault;
  if (!('default' in s)) return '(required)';
  const value = s.default;
  if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) return '(empty)';
  if (s.parse === parseDuration && typeof value === 'number') return formatDuration(value);
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

/** The settings of `spec` as table rows, in declaration order, for READMEs and `--help`. */
export function describeSettings(spec: SettingsSpec): SettingRow[] {
  return Object.values(spec).map((s) => ({ env: s.env, default: showDefault(s), description: s.description }));
}
