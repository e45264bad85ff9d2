// The one polling helper of the tests: a condition that some process brings about is read until it holds.

/** Reads `read` every 50 ms until `ok` holds, and returns that value; fails after `timeoutMs`. */
export async function waitFor<T>(
  read: () => T | Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`the condition never held within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
