/**
 * The request a piece of work belongs to, carried along the asynchronous calls it makes (node:async_hooks
 * AsyncLocalStorage): the app's frame opens a scope per request (server/app.ts), the log writer reads it when it
 * writes an event (server/log.ts), so every line of a request carries its id without business code passing it.
 * Work a request leaves behind and that is resumed from elsewhere (a push wait woken by the phone's request) re-enters
 * its scope with `run` (server/auth/wait.ts). One instance per Deps, no module-level singleton.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestInfo {
  /** The request id (X-Request-Id): a sane incoming one, else generated. */
  readonly id: string;
}

export class RequestScope {
  private readonly storage = new AsyncLocalStorage<RequestInfo>();

  /** Runs `fn` (and everything it starts) as part of the request `info`; no scope when `info` is undefined. */
  run<T>(info: RequestInfo | undefined, fn: () => T): T {
    return info ? this.storage.run(info, fn) : fn();
  }

  /** The request the running code belongs to, if any. */
  current(): RequestInfo | undefined {
    return this.storage.getStore();
  }
}

/** An incoming X-Request-Id is taken when it is a sane token: 1–64 characters of [A-Za-z0-9._-]. */
export const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
