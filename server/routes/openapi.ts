/** GET /openapi.json: the OpenAPI 3.1 description of every endpoint (server/openapi.ts), as JSON. */
import Router from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState } from '../app.ts';
import { openApiDocument } from '../openapi.ts';

export function openapiRouter(deps: Deps): Router<AppState> {
  const router = new Router<AppState>();
  // Built once: the document only depends on the configured public URL.
  const json = JSON.stringify(openApiDocument(deps.config.server.publicUrl || undefined));
  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.body = json;
  });
  return router;
}
