// Text PostgreSQL cannot store: its text and jsonb types refuse a NUL character, and a UTF-16 surrogate without
// its pair has no UTF-8 encoding. The request guard refuses such text in every request, and a service that reads
// text the guard does not see (usage events, decoded by the usage service itself) checks it with the same rule.

/** Whether PostgreSQL can store `text`: it holds no NUL character and no UTF-16 surrogate without its pair. */
export function isStorableText(text: string): boolean {
  return !text.includes('\u0000') && text.isWellFormed();
}
