/** POST /auth (admin username/password → JWT) and the admin guard used by admin endpoints. */
import Router from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState, AppContext } from '../app.ts';
import { AuthError, PolicyError } from '../../core/errors.ts';
import { signJwt, verifyJwt, type JwtClaims } from '../auth/jwt.ts';
import type { Who } from '../../policies/types.ts';
import { okEnvelope } from '../envelope.ts';
import { requestPolicies } from '../auth/context.ts';
import { clientGoneSignal } from '../respond.ts';
import { adminKeyOf, throttleAddress } from '../auth/throttle.ts';
import { SIGNATURE_REFUSED } from '../auth/app_signature.ts';

export function authRouter(deps: Deps): Router<AppState> {
  const router = new Router<AppState>();
  /** A dummy hash so an unknown admin costs as much as a wrong password (no user enumeration by timing). */
  let dummyHash: Promise<string> | null = null;
  router.post('/auth', async (ctx) => {
    const { params } = ctx.state;
    const username = params.requireNonEmpty('username');
    const password = params.require('password');
    // ERROR until the password was checked: a refused (429, 503) or dropped check is no REJECT.
    ctx.state.audit = { action: 'POST /auth', success: false, outcome: 'ERROR', admin: username };
    // Back-off before any hashing (429 when this admin name or this address is over budget).
    const attempt = await deps.throttle.begin({
      user: adminKeyOf(username),
      address: throttleAddress(deps.config, ctx.state.peer, ctx.state.client, 'auth'),
    });
    let ok = false;
    let admin: Awaited<ReturnType<typeof deps.store.admins.byName>>;
    try {
      admin = await deps.store.admins.byName(username);
      // The PIN queue's job: fair per admin, dropped unhashed when the client went away. Unknown names share one key,
      // or a flood of made-up names would take a turn each and starve everyone else.
      const job = { key: admin ? `admin:${admin.username}` : 'admin:?', signal: clientGoneSignal(ctx.res) };
      // Made on first need, without this client's signal (it is shared); a refused attempt is not kept.
      const dummy = () =>
        (dummyHash ??= deps.pins.hash('pushgate-dummy-password', { key: job.key }).catch((err: unknown) => {
          dummyHash = null;
          throw err;
        }));
      ok = await deps.pins.verify(admin?.passwordHash ?? (await dummy()), password, job);
    } catch (err) {
      await deps.throttle.release(attempt); // not a wrong password
      throw err;
    }
    if (!admin || !ok) {
      ctx.state.audit.outcome = 'REJECT';
      deps.events.emit('admin.login', {
        username,
        client: ctx.state.client,
        success: false,
        reason: admin ? 'wrong_password' : 'unknown_admin',
      });
      throw new AuthError('Authentication failure. Wrong credentials', 4031); // the attempt stays counted
    }
    await deps.throttle.succeeded(attempt);
    deps.events.emit('admin.login', { username: admin.username, client: ctx.state.client, success: true });
    const iat = Math.floor(deps.clock.now() / 1000);
    const token = await signJwt({ sub: admin.username, role: 'admin', iat, exp: iat + deps.config.admin.jwtTtlSeconds }, deps.jwtKey);
    ctx.body = okEnvelope(deps.clock.now(), {
      token,
      role: 'admin',
      username: admin.username,
      realm: '',
      rights: ['triggerchallenge', 'enroll', 'tokenlist', 'delete', 'enable', 'disable', 'reset', 'setpin'],
    });
    ctx.state.audit = { ...ctx.state.audit, success: true, outcome: 'OK' };
  });
  return router;
}

/**
 * The raw JWT from `Authorization` (eduMFA sends no `Bearer`, both are accepted). With admin-scope policies for
 * `right`, an admin needs a matching policy that grants it.
 */
export async function requireAdmin(deps: Deps, ctx: AppContext, right?: string): Promise<string> {
  const header = ctx.get('authorization');
  if (!header) throw new AuthError('Authentication failure. Missing Authorization header.', 4033);
  const claims = await verifyJwt(header, deps.jwtKey, deps.clock.now());
  if (claims.role !== 'admin') throw new AuthError('Authentication failure. You do not have the necessary role.', 4306);
  if (!(await deps.store.admins.byName(claims.sub))) throw new AuthError('Authentication failure. Unknown administrator.', 4031);
  ctx.state.admin = claims.sub;
  if (right && !adminAllowed(deps, ctx, right)) throw new PolicyError(`Admin actions are defined, but the action ${right} is not allowed!`);
  return claims.sub;
}

/** Whether the admin of this request (after requireAdmin) has `right`: always when no admin-scope policy is active. */
export function adminAllowed(deps: Deps, ctx: AppContext, right: string): boolean {
  if (!deps.policies.policies.some((p) => p.scope === 'admin' && p.active)) return true;
  const rp = requestPolicies(deps, { user: { name: ctx.state.admin ?? '', realm: '', resolver: '' }, client: ctx.state.client });
  return rp.action<boolean>(right, 'admin') === true;
}

/**
 * AUTHZ `api_key_required` for the /validate endpoints: when it applies to `who`, the request needs
 * `Authorization: <API key>` — a JWT of this server with role `validate`. 403 (303) with eduMFA's messages otherwise.
 */
export async function requireApiKey(deps: Deps, ctx: AppContext, who: Who): Promise<void> {
  if (!deps.policies.policies.some((p) => p.active && p.actions.api_key_required === true)) return; // the common case: no such policy
  if (!requestPolicies(deps, who).action<boolean>('api_key_required')) return;
  let claims: JwtClaims;
  try {
    claims = await verifyJwt(ctx.get('authorization'), deps.jwtKey, deps.clock.now());
  } catch {
    throw new PolicyError('No valid API key was passed.');
  }
  if (claims.role !== 'validate') throw new PolicyError('A correct JWT was passed, but it was no API key.');
}

/**
 * AUTHZ `application_required` for the /validate endpoints: when it applies to `who`, the request must be signed by
 * an application (verified by the app's frame: server/auth/app_signature.ts). An application bound to a realm signs
 * only for users of that realm. 401 with the one signature message / 403 otherwise.
 */
export function requireApplication(deps: Deps, ctx: AppContext, who: Who): void {
  const app = ctx.state.application;
  if (app?.realm && who.user && who.user.realm !== app.realm)
    throw new PolicyError('The application may not authenticate users of this realm.');
  if (app) return;
  if (!deps.policies.policies.some((p) => p.active && p.actions.application_required === true)) return; // the common case
  if (requestPolicies(deps, who).action<boolean>('application_required')) {
    deps.events.emit('app.auth_failed', { app: '?', reason: 'unsigned' });
    throw new AuthError(SIGNATURE_REFUSED, 4031);
  }
}
