// Credentials out of printed text. A URL's user info (`postgres://billing:S3cr3t@db/usage` prints as
// `postgres://[redacted]@db/usage`, `nats://token@host` as `nats://[redacted]@host`) and the values of
// credential-like parameters (`?sslpassword=...`, `&token=...`, and `password=...` of a libpq connection string
// given where a URL was expected) are replaced. Configuration messages and every logged string go through it.

/** What stands in place of a credential. */
export const REDACTED = '[redacted]';

// What may end a URL in running text: a blank, a quote, an angle bracket.
const URL_END = /[\s"'`<>]/;

// A `name=value` parameter, in a query (`?`, `&`, `;`) or a libpq `key=value` list; its value runs to the next
// separator, or is quoted as libpq quotes it.
const PARAMETER = /(?<![\w.-])([\w.-]+)=('(?:[^'\\]|\\.)*'|[^\s&;#"'`<>]*)/g;

// A parameter whose value is a credential, by its name: password, sslpassword, passphrase, secret, client_secret,
// token, access_token (not a page_token), key, apikey, api_key, access-key, auth, credentials, signature. Other
// keys (plan_key, sslkey, a file) are not credentials.
const CREDENTIAL_NAME =
  /^(?:[\w.-]*(?:password|passwd|passphrase|secret|(?<!page_)token|signature)|pwd|key|[\w.-]*(?:api|access|secret|private|client)[-_]?key|auth|credentials?)$/i;

// A host and port, the authority of a URL without user info (`db.internal:5432`, `[::1]:4222`).
const HOST_AND_PORT = /^(?:\[[^\]]*\]|[^:]*)(?::\d*)?$/;

// A scheme is at most this long, so the look for one before each `://` stays short.
const SCHEME_MAX = 32;

const isLetter = (code: number) => (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a);
const isSchemeCharacter = (code: number) =>
  isLetter(code) || (code >= 0x30 && code <= 0x39) || code === 0x2b || code === 0x2d || code === 0x2e;

/** A URL found in a text: where its scheme starts, and where what follows its `://` starts. */
interface UrlStart {
  scheme: number;
  rest: number;
}

/** Every URL start in `text`: each `://` after a scheme (a letter, then letters, digits, `+`, `-`, `.`). */
function urlStarts(text: string): UrlStart[] {
  const starts: UrlStart[] = [];
  for (let at = text.indexOf('://'); at >= 0; at = text.indexOf('://', at + 3)) {
    let scheme = at;
    while (scheme > 0 && at - scheme < SCHEME_MAX && isSchemeCharacter(text.charCodeAt(scheme - 1))) scheme--;
    while (scheme < at && !isLetter(text.charCodeAt(scheme))) scheme++;
    if (scheme < at) starts.push({ scheme, rest: at + 3 });
  }
  return starts;
}

/**
 * The part of a URL after `scheme://` with its user info replaced. The user info ends at the last `@` before the
 * path (`/`, `?`, `#`); when the part before the path is not a host and port (`billing:ab` of
 * `billing:ab/cd@db`, a password with a `/` that makes the URL unparseable), it ends at the last `@` of all.
 */
function redactAuthority(rest: string): string {
  const pathAt = rest.search(/[/?#\\]/);
  const authority = pathAt < 0 ? rest : rest.slice(0, pathAt);
  let at = authority.lastIndexOf('@');
  if (at < 0 && !HOST_AND_PORT.test(authority)) at = rest.lastIndexOf('@');
  return at < 0 ? rest : `${REDACTED}${rest.slice(at)}`;
}

/** `text` with the value of every credential-like parameter replaced. */
function redactParameters(text: string): string {
  return text.replace(PARAMETER, (parameter, name: string) =>
    CREDENTIAL_NAME.test(name) ? `${name}=${REDACTED}` : parameter,
  );
}

/** `text` with the user info of every URL in it replaced. */
function redactUserInfo(text: string): string {
  const starts = urlStarts(text);
  let redacted = '';
  let copied = 0;
  starts.forEach((start, i) => {
    // A URL runs to a blank, a quote or an angle bracket, or to the next URL (a comma-separated list of servers).
    const next = starts[i + 1]?.scheme ?? text.length;
    const stop = text.slice(start.rest, next).search(URL_END);
    const end = stop < 0 ? next : start.rest + stop;
    const rest = text.slice(start.rest, end);
    const withoutUserInfo = redactAuthority(rest);
    if (withoutUserInfo === rest) return;
    redacted += text.slice(copied, start.rest) + withoutUserInfo;
    copied = end;
  });
  return copied === 0 ? text : redacted + text.slice(copied);
}

/** `text` with the user info and credential parameters of every URL in it (and `password=...` pairs) replaced. */
export function redactUrls(text: string): string {
  // User info needs a `://` and an `@`; a parameter an `=`.
  const withoutUserInfo = text.includes('://') && text.includes('@') ? redactUserInfo(text) : text;
  return withoutUserInfo.includes('=') ? redactParameters(withoutUserInfo) : withoutUserInfo;
}

/**
 * One value meant as a URL, redacted even where it is not one: anything between its scheme and its last `@` is
 * replaced, also without `//` after its scheme (`postgres:/billing:S3cr3t@db`) or without a scheme
 * (`billing:S3cr3t@db/usage`), and whatever the password holds (`billing:2024/S3cr3t@db`).
 */
export function redactUrl(value: string): string {
  // One URL: its user info, whatever characters it holds, ends at its last `@`.
  const scheme = /^[a-z][a-z\d+.-]{0,31}:\/\//i.exec(value)?.[0] ?? '';
  const at = value.lastIndexOf('@');
  if (scheme !== '' && at > scheme.length) return redactUrls(`${scheme}${REDACTED}${value.slice(at)}`);
  if (scheme !== '') return redactUrls(value);
  return redactUrls(at < 0 ? value : `${REDACTED}${value.slice(at)}`);
}

/**
 * The first part of a longer text, redacted as `redactUrls` does. A URL that runs to the cut may have lost the
 * `@` that ends its user info: it keeps only its scheme.
 */
export function redactCutText(prefix: string): string {
  const last = urlStarts(prefix).at(-1);
  const open = last !== undefined && !URL_END.test(prefix.slice(last.rest));
  return redactUrls(open ? `${prefix.slice(0, last.rest)}${REDACTED}` : prefix);
}
