/**
 * GET /healthz: liveness plus a database round trip. GET /readyz: readiness (server/readiness.ts) — 200 when every
 * check passes, else 503, both in the envelope. GET /metrics: the Prometheus text (server/metrics.ts), behind a bearer
 * token when metrics.token is set, and here only when metrics.listen does not give it a listener of its own.
 * None of them touches the PIN hasher.
 */
import crypto from 'node:crypto';
import Router, { type RouterMiddleware } from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState } from '../app.ts';
import { okEnvelope } from '../envelope.ts';
import { AuthError } from '../../core/errors.ts';

export function healthRouter(deps: Deps): Router<AppState> {
  const router = new Router<AppState>();
  router.get('/healthz', async (ctx) => {
    await deps.store.ping();
    ctx.body = okEnvelope(deps.clock.now(), { status: 'ok', database: deps.store.dialect, pin_queue: deps.pins.limiter.waiting });
  });
  router.get('/readyz', async (ctx) => {
    const report = await deps.readiness.run();
    // A report, not an error: the envelope with status true either way; the HTTP status is what a load balancer reads.
    ctx.status = report.ready ? 200 : 503;
    ctx.body = okEnvelope(deps.clock.now(), report);
  });
  if (!deps.config.metrics.listen) router.get('/metrics', metricsRoute(deps));
  return router;
}

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();

/** GET /metrics, for the main app's router or the separate metrics listener (server/app.ts createMetricsApp). */
export function metricsRoute(deps: Pick<Deps, 'config' | 'metrics'>): RouterMiddleware<AppState> {
  const token = deps.config.metrics.token;
  const expected = token === null ? null : digest(`Bearer ${token}`);
  return async (ctx) => {
    if (expected) {
      // Compared as digests in constant time (the lengths differ otherwise and would tell the token's length).
      if (!crypto.timingSafeEqual(digest(ctx.get('authorization')), expected)) {
        ctx.set('WWW-Authenticate', 'Bearer realm="pushgate metrics"');
        throw new AuthError('A valid bearer token is required for /metrics.', 4033);
      }
    }
    const text = await deps.metrics.render();
    ctx.type = deps.metrics.contentType;
    ctx.body = text;
  };
}
