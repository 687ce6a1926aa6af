/** PLACEHOLDER until the push module lands: /ttype/<type> rejects every type. */
import Router from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState } from '../app.ts';
import { ParameterError } from '../errors.ts';

export function smartphoneRouter(deps: Deps): Router<AppState> {
  void deps;
  const router = new Router<AppState>();
  router.all('/ttype/:type', (ctx) => { throw new ParameterError(`Invalid tokentype provided. ttype: ${ctx.params.type}`); });
  return router;
}
