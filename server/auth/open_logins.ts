/**
 * This node's short memory of the open push logins it has just read or made (issue 9/11, the push flood): an attacker
 * who has the PIN repeats the pass that opened a login, and each repeat is answered with that login's CHALLENGE
 * (server/auth/push_fatigue.ts repeatedLogin). Read from the database, a repeat costs the token list and the push
 * state (three queries); from this memory it costs none, so a flood of repeats leaves the event loop to everyone else.
 *
 * It is a read cache, never state: every decision that changes something (a new login, a strike, an answer) still
 * goes through the database's conditional statements. An entry is used only for OPEN_LOGIN_FRESH_MS after the
 * database showed the login open, and never past the login's expiry; this node forgets it at once when the login is
 * answered, released or unblocked here. What another node does meanwhile is seen at most OPEN_LOGIN_FRESH_MS late, and
 * the worst that does is hand out a login that has just closed — the IdP's next poll then reads it as finished. It
 * never sends a push and never lets a request past a back-off.
 */
import type { ChallengeOut } from './outcome.ts';

export interface RememberedLogin {
  readonly transactionId: string;
  /** MAC of the pass that opened the login (push_fatigue.ts passMac), hex. */
  readonly passMac: string;
  readonly challenges: readonly ChallengeOut[];
  readonly expiresAt: number;
  /** When the database last showed it open (or this node opened it). */
  readonly readAt: number;
}

/** How long a remembered login is used without asking the database again (ms). */
export const OPEN_LOGIN_FRESH_MS = 1000;
/** At most this many (user, address) entries; the oldest goes first. */
export const OPEN_LOGIN_MEMORY_MAX = 10_000;

export class OpenLoginMemory {
  private readonly entries = new Map<string, RememberedLogin>();

  /** The login of (subject, client) if it is fresh and not expired at `now`. */
  get(subject: string, client: string, now: number): RememberedLogin | undefined {
    const key = keyOf(subject, client);
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (now >= e.expiresAt || now < e.readAt || now - e.readAt >= OPEN_LOGIN_FRESH_MS) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  remember(subject: string, client: string, login: RememberedLogin): void {
    const key = keyOf(subject, client);
    this.entries.delete(key);
    if (this.entries.size >= OPEN_LOGIN_MEMORY_MAX) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, login);
  }

  /** Forgets the login of (subject, client), or every login of the subject when no client is given. */
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
