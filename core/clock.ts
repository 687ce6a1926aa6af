/**
 * Clock: the only source of time in pushgate. `Date.now()` and `setTimeout` appear in this file alone;
 * everything else receives a Clock through Deps, and tests hand in a FakeClock they advance by hand.
 * One documented exception: the back-off windows of rate-limiter-flexible (server/auth/throttle.ts) run on the
 * library's own Date.now()/setTimeout (or Redis's clock) — they measure real request rates, not business time.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Calls `fn` after `ms` milliseconds of this clock; returns a function that cancels it. */
  schedule(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(ms, fn) {
    const handle = setTimeout(fn, ms);
    handle.unref?.();
    return () => clearTimeout(handle);
  },
};
