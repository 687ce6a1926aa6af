/**
 * Parsed values by their text, the most recently used kept (at most `limit`): for keys that arrive as text with every
 * request (a phone's or a device's public key) and cost more to parse (crypto.createPublicKey) than to use. A text
 * that does not parse is not remembered: `get` answers null for it, and asks `parse` again next time.
 */
export interface ParseCache<T> {
  get(text: string): T | null;
  readonly size: number;
}

export function createParseCache<T>(limit: number, parse: (text: string) => T): ParseCache<T> {
  const parsed = new Map<string, T>();
  return {
    get size() {
      return parsed.size;
    },
    get(text) {
      const hit = parsed.get(text);
      if (hit !== undefined) {
        parsed.delete(text); // re-inserted as the most recently used
        parsed.set(text, hit);
        return hit;
      }
      let value: T;
      try {
        value = parse(text);
      } catch {
        return null;
      }
      parsed.set(text, value);
      if (parsed.size > limit) parsed.delete(parsed.keys().next().value as string);
      return value;
    },
  };
}
