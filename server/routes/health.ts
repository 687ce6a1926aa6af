/** GET /healthz: liveness plus a database round trip. Never touches the PIN hasher. */
import Router from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState } from '../app.ts';
import { okEnvelope } from '../envelope.ts';

export function healthRouter(deps: Deps): Router<AppState> {
  const router = new Router<AppState>();
  router.get('/healthz', async (ctx) => {
    await deps.store.ping();
    ctx.body = okEnvelope(deps.clock.now(), { status: 'ok', database: deps.store.dialect, pin_queue: deps.pins.limiter.waiting });
  });
  router.get('/metrics', (ctx) => {
    ctx.type = 'text/plain; version=0.0.4';
    ctx.body = deps.metrics.render({
      pushgate_waits_active: deps.waits.active,
      pushgate_answer_bus_waiters: deps.answers.waiting,
      pushgate_pin_hash_queue: deps.pins.limiter.waiting,
      pushgate_pin_hash_active: deps.pins.limiter.active,
      pushgate_pin_queue_keys: deps.pins.limiter.waitingKeys,
      pushgate_pin_queue_longest_key: deps.pins.limiter.longestKeyQueue,
    });
  });
  return router;
}
