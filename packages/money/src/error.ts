// The base of every error the money package throws, so callers map them in one place (to INVALID_ARGUMENT,
// usually) by their stable `code`.

/** An error of the money package, with a stable code. */
export abstract class MoneyError extends Error {
  /** Stable code for callers mapping errors, e.g. `INVALID_DECIMAL`. */
  abstract readonly code: string;
}
