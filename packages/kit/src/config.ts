// Configuration from the environment, read and validated once at start. A missing or malformed setting
// stops the service with one line naming it, which never shows a credential: a URL's user info and
// credential-like parameters are redacted (redact.ts).
import { redactUrl, redactUrls } from './redact.ts';

/** A failed setting: its message, with every URL in it redacted, is the one line printed before exiting. */
export class ConfigError extends Error {
  override name = 'ConfigError';

  constructor(message: string) {
    super(redactUrls(message));
  }
}

/** One setting: where it comes from, what it means, its default and how to read it. */
export interface Setting<T> {
  /** Environment variable. */
  env: string;
  /** What it is for (listed in READMEs). */
  description: string;
  /** Value when unset or empty; no default means required. */
  default?: T;
  /** Reads the raw string; throws an Error whose message says what was expected. */
  parse(raw: string): T;
  /** How the default is shown in docs. */
  shownDefault?: string;
}

/** A set of settings, by name. */
export type SettingsSpec = Record<string, Setting<unknown>>;

/** The values of a spec. */
export type ConfigOf<S extends SettingsSpec> = { [K in keyof S]: S[K] extends Setting<infer T> ? T : never };

/** Declares a setting (keeps its value type). */
export function setting<T>(s: Setting<T>): Setting<T> {
  return s;
}

/** Parsers for common kinds of settings. */
export const parsers = {
  /** Any string. */
  string: (raw: string) => raw,
  /** A TCP port, 0-65535 (0 = any free port). */
  port(raw: string): number {
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n > 65_535) throw new Error(`expected a port number 0-65535, got "${raw}"`);
    return n;
  },
  /** A whole number. */
  integer(raw: string): number {
    if (!/^-?\d+$/.test(raw)) throw new Error(`expected a whole number, got "${raw}"`);
    return Number(raw);
  },
  /** true/false (also 1/0, yes/no). */
  boolean(raw: string): boolean {
    const v = raw.toLowerCase();
    if (['true', '1', 'yes'].includes(v)) return true;
    if (['false', '0', 'no'].includes(v)) return false;
    throw new Error(`expected true or false, got "${raw}"`);
  },
  /** A URL with one of the given schemes; a message shows it without its user info and credentials. */
  url: (...schemes: string[]) =>
    function url(raw: string): string {
      let parsed: URL;
      try {
        parsed = new URL(raw);
      } catch {
        throw new Error(`expected a URL, got "${redactUrl(raw)}"`);
      }
      if (schemes.length > 0 && !schemes.includes(parsed.protocol.replace(/:$/, ''))) {
        throw new Error(`expected a ${schemes.join(' or ')} URL, got "${redactUrl(raw)}"`);
      }
      return raw;
    },
  /** A comma-separated list of URLs. */
  urls: (...schemes: string[]) =>
    function urls(raw: string): string[] {
      return raw.split(',').map((u) => parsers.url(...schemes)(u.trim()));
    },
  /** One of fixed values. */
  oneOf: <T extends string>(...values: T[]) =>
    function oneOf(raw: string): T {
      if (!(values as string[]).includes(raw)) throw new Error(`expected one of ${values.join(', ')}, got "${raw}"`);
      return raw as T;
    },
  /** A whole number of at least 1. */
  positiveInteger(raw: string): number {
    if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new Error(`expected a whole number of at least 1, got "${raw}"`);
    return Number(raw);
  },
  /** A duration longer than zero, such as 250ms, 5s, 2m; returns milliseconds. */
  positiveDuration(raw: string): number {
    const ms = parsers.duration(raw);
    if (ms === 0) throw new Error(`expected a duration longer than zero, got "${raw}"`);
    return ms;
  },
  /** A duration such as 250ms, 5s, 2m; returns milliseconds. */
  duration(raw: string): number {
    const match = /^(\d+)(ms|s|m|h)$/.exec(raw);
    if (!match) throw new Error(`expected a duration such as 250ms, 5s or 2m, got "${raw}"`);
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
    return Number(match[1]) * unit;
  },
};

/** Reads and validates every setting of `spec` from `env`; throws ConfigError on the first bad one. */
export function loadConfig<S extends SettingsSpec>(spec: S, env: NodeJS.ProcessEnv = process.env): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(spec)) {
    const raw = env[s.env];
    if (raw === undefined || raw === '') {
      if (!('default' in s)) throw new ConfigError(`${s.env}: required (${s.description})`);
      out[name] = s.default;
      continue;
    }
    try {
      out[name] = s.parse(raw);
    } catch (err) {
      throw new ConfigError(`${s.env}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return out as ConfigOf<S>;
}

/** The settings as table rows (variable, default, description), for READMEs and `--help`. */
export function describeSettings(spec: SettingsSpec): { env: string; default: string; description: string }[] {
  return Object.values(spec).map((s) => ({
    env: s.env,
    default:
      s.shownDefault ?? (s.default === undefined ? '(required)' : s.default === '' ? '(empty)' : String(s.default)),
    description: s.description,
  }));
}
