/**
 * This node's short memory of the push state it has just read or made (issue 9/11, the push flood), one entry per
 * (user, end-user address) — what the database last showed for that pair:
 *  - an open login (`kind: 'login'`): an attacker who has the PIN repeats the pass that opened a login, and each repeat
 *    is answered with that login's CHALLENGE (server/auth/push_fatigue.ts repeatedLogin / rememberedLogin);
 *  - a back-off refusal (`kind: 'refusal'`): the user and/or the address are backed off and the user's only candidate
 *    tokens are push tokens, so a plain login is refused (429 + Retry-After; push_fatigue.ts backoffRefusal /
 *    rememberedRefusal) — the flood that goes on after the phone said "this wasn't me".
 * Read from the database, each of these costs the token list and the push state (three queries and the policy
 * evaluation); from this memory it costs none, so a flood of repeats leaves the event loop to everyone else.
 *
 * It is a read cache, never state: every decision that changes something (a new login, a strike, an answer, an
 * unblock) still goes through the database's conditional statements, and nothing here is written back. An entry is
 * used only for PUSH_MEMORY_FRESH_MS after the database read that made it, never past the login's expiry or the
 * back-off's end, and only for a plain login (no serial, type, types, secondFactorOnly or transaction id: the same
 * request the database path answered). This node forgets a subject's entries at once when its push is answered here
 * (an accept resets the back-off, a decline may lock), and on unblock; a login's entry when it is released. What
 * changes elsewhere — another node's answer or unblock, an admin's token change, a policy change — is seen at most
 * PUSH_MEMORY_FRESH_MS late: the worst that does is hand out a login that has just closed (the IdP's next poll reads it
 * as finished) or refuse a login for up to that long after its back-off was lifted (the client retries after the
 * Retry-After it was given anyway). It never sends a push, never lets a request past a back-off and never ends a
 * back-off early or late: a refusal's end is the database's, and its Retry-After is computed from it.
 */
import type { ChallengeOut } from './outcome.ts';

export interface RememberedLogin {
  readonly kind: 'login';
  readonly transactionId: string;
  /** MAC of the pass that opened the login (push_fatigue.ts passMac), hex. */
  readonly passMac: string;
  readonly challenges: readonly ChallengeOut[];
  readonly expiresAt: number;
  /** When the database last showed it open (or this node opened it). */
  readonly readAt: number;
}

export interface RememberedRefusal {
  readonly kind: 'refusal';
  /** Which back-off refused (push_fatigue.ts PushGate.limit). */
  readonly limit: 'push_user' | 'push_address';
  /** When that back-off ends (the database's last strike + delay). */
  readonly expiresAt: number;
  /** When the database showed the back-off. */
  readonly readAt: number;
}

export type RememberedPushState = RememberedLogin | RememberedRefusal;

/** How long a remembered entry is used without asking the database again (ms). */
export const PUSH_MEMORY_FRESH_MS = 1000;
/** At most this many (user, address) entries; the oldest goes first. */
export const PUSH_MEMORY_MAX = 10_000;

export class PushStateMemory {
  private readonly entries = new Map<string, RememberedPushState>();

  /** The entry of (subject, client) if it is fresh and not expired at `now`. */
  get(subject: string, client: string, now: number): RememberedPushState | undefined {
    const key = keyOf(subject, client);
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (now >= e.expiresAt || now < e.readAt || now - e.readAt >= PUSH_MEMORY_FRESH_MS) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  /** What the database just showed for (subject, client); replaces the pair's previous entry. */
  remember(subject: string, client: string, entry: RememberedPushState): void {
    const key = keyOf(subject, client);
    this.entries.delete(key);
    if (this.entries.size >= PUSH_MEMORY_MAX) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, entry);
  }

  /** Forgets the entry of (subject, client), or every entry of the subject when no client is given. */
  forget(subject: string, client?: string): void {
    if (client !== undefined) {
      this.entries.delete(keyOf(subject, client));
      return;
    }
    const prefix = keyOf(subject, '');
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}

const keyOf = (subject: string, client: string): string => `${subject}\u0000${client}`;
