/**
 * The self-service page (`selfservice.path`, default /selfservice; served only with `selfservice.enabled`):
 * server-rendered HTML forms, no script. The algorithms are server/auth/selfservice.ts; here are the cookie, the
 * CSRF checks, the security headers, the audit rows and the markup.
 *
 * - Session cookie `__Host-pushgate_ss` (`pushgate_ss` when `selfservice.cookie_secure` is false for plain-HTTP
 *   development): HttpOnly, SameSite=Strict, Path=/, Secure, no Max-Age (ends with the browser; the server's idle
 *   and absolute timeouts end it sooner).
 * - CSRF: every POST of a session carries the session's synchronizer token (`csrf`); the login form, before any
 *   session exists, a double-submit token (cookie `…_login` and the same value in the form) against login CSRF.
 * - Headers: a Content-Security-Policy without any script source, frame-ancestors 'none', Cache-Control no-store.
 * - Every POST answers with a redirect (303, Post/Redirect/Get) or a page; every action writes an audit row before
 *   the answer, and a login whose ACCEPT cannot be audited is refused (the session is deleted again).
 */
import crypto from 'node:crypto';
import Router, { type RouterContext } from '@koa/router';
import type { Deps } from '../deps.ts';
import type { AppState } from '../app.ts';
import { MfaError, TooManyRequestsError } from '../../core/errors.ts';
import { errorReply, writeAudit, type AuditDraft } from '../respond.ts';
import { throttleAddress } from '../auth/throttle.ts';
import { matchesClient } from '../../policies/match.ts';
import { COLUMN_LIMITS } from '../store/limits.ts';
import {
  csrfMatches,
  endSession,
  enrollOwn,
  finishPushLogin,
  mayChange,
  openSession,
  otpLogin,
  ownTokens,
  passwordLogin,
  pushLogin,
  recentLogins,
  removeOwn,
  renameOwn,
  secondFactorOptions,
  verifyTotp,
  type NewSession,
  type Origin,
  type SecondStep,
  type SelfserviceSession,
} from '../auth/selfservice.ts';
import { form, html, notice, page, STYLE, type Html, type Notice } from './selfservice_html.ts';
import type { TokenRecord } from '../../tokens/types.ts';

type Ctx = RouterContext<AppState>;

/** Every response of the page. */
export function securityHeaders(secure: boolean): Record<string, string> {
  return {
    'Content-Security-Policy':
      "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'Cache-Control': 'no-store',
    Pragma: 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Permissions-Policy': 'camera=(), microphone=(), geolocation=()',
    ...(secure ? { 'Strict-Transport-Security': 'max-age=31536000' } : {}),
  };
}

/** Status texts after a redirect (`?done=…`): fixed messages, never text from the request. */
const DONE: Record<string, string> = {
  login: 'You are logged in.',
  enrolled: 'The token is ready to use.',
  renamed: 'The description was saved.',
  removed: 'The token was removed.',
  logout: 'You are logged out.',
};

const TYPE_TITLES: Record<string, string> = {
  totp: 'Authenticator app (TOTP code)',
  edupush: 'Push notification (eduMFA app)',
  push: 'Push notification (privacyIDEA app)',
};

export function selfserviceRouter(deps: Deps): Router<AppState> {
  const cfg = deps.config.selfservice;
  const base = cfg.path;
  const router = new Router<AppState>({ prefix: base });
  const cookieName = cfg.cookieSecure ? '__Host-pushgate_ss' : 'pushgate_ss';
  const loginCookie = `${cookieName}_login`;
  const headers = securityHeaders(cfg.cookieSecure);

  const cookie = (name: string, value: string, maxAge?: number): string =>
    `${name}=${value}; Path=/; HttpOnly; SameSite=Strict${cfg.cookieSecure ? '; Secure' : ''}${maxAge !== undefined ? `; Max-Age=${maxAge}` : ''}`;
  const readCookie = (ctx: Ctx, name: string): string | undefined => {
    for (const part of (ctx.get('cookie') || '').split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
    return undefined;
  };
  const setSession = (ctx: Ctx, created: NewSession) => ctx.append('Set-Cookie', cookie(cookieName, created.id));
  const clearSession = (ctx: Ctx) => ctx.append('Set-Cookie', cookie(cookieName, '', 0));

  /**
   * The browser's address: the peer, or — when the peer is a trusted proxy — the first X-Forwarded-For entry. Never
   * the `client` parameter, which /validate/* believes from a trusted IdP: here the form is the user's.
   */
  const browser = (ctx: Ctx): string => {
    const peer = ctx.state.peer;
    const proxies = deps.config.server.trustedProxies;
    if (!proxies.length || !matchesClient(proxies, peer)) return peer;
    const first = String(ctx.get('x-forwarded-for') ?? '')
      .split(',')[0]
      ?.trim();
    return first && first.length <= COLUMN_LIMITS.audit.client ? first : peer;
  };
  /** The policies' client and the back-off's address (the browser's; never a proxy's own address). */
  const origin = (ctx: Ctx): Origin => {
    const client = browser(ctx);
    return { client, address: throttleAddress(deps.config, ctx.state.peer, client, 'auth') };
  };
  const param = (ctx: Ctx, name: string, max = 1024): string => (ctx.state.params.get(name) ?? '').slice(0, max);

  const send = (ctx: Ctx, status: number, body: string) => {
    for (const [k, v] of Object.entries(headers)) ctx.set(k, v);
    ctx.status = status;
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = body;
  };
  const redirect = (ctx: Ctx, to = '', done?: keyof typeof DONE) => {
    for (const [k, v] of Object.entries(headers)) ctx.set(k, v);
    ctx.status = 303;
    ctx.set('Location', `${base}${to}${done ? `?done=${done}` : ''}`);
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = html`<!doctype html><html lang="en"><title>See other</title><a href="${base}${to}">Continue</a></html>`.text;
  };

  const audit = (ctx: Ctx, draft: Omit<AuditDraft, 'requestId'>) =>
    writeAudit(deps, { ...draft, requestId: ctx.state.requestId }, browser(ctx), null);
  const userAudit = (s: SelfserviceSession | null, action: string, rest: Partial<AuditDraft>): AuditDraft => ({
    action: `selfservice ${action}`,
    success: false,
    outcome: 'ERROR',
    username: s?.user.name ?? null,
    realm: s?.user.realm ?? null,
    ...rest,
  });

  /** An error as a page: its status, its message (a 500 tells nothing), Retry-After for a 429. */
  const errorPage = (ctx: Ctx, raw: unknown, s: SelfserviceSession | null) => {
    const { error } = errorReply(deps, ctx.method, ctx.path, raw); // the request.failed event (and the log line)
    if (error instanceof TooManyRequestsError || error.status === 503)
      for (const [k, v] of Object.entries(error.headers ?? {})) ctx.set(k, v);
    const text = error.status >= 500 ? 'Something went wrong on the server. Please try again later.' : error.message;
    const back = html`<p><a href="${base}">Back to the self-service page</a></p>`;
    send(
      ctx,
      error.status,
      page(base, 'Error', html`<h1>Something did not work</h1>${notice({ kind: 'error', text })}${back}`, logoutButton(s)),
    );
  };

  /** Runs a handler; errors become pages (and an ERROR audit row for a POST of a session). */
  const handle =
    (action: string | null, fn: (ctx: Ctx, s: SelfserviceSession | null) => Promise<void>) =>
    async (ctx: Ctx): Promise<void> => {
      let s: SelfserviceSession | null = null;
      try {
        s = await openSession(deps, readCookie(ctx, cookieName));
        await fn(ctx, s);
      } catch (err) {
        if (action) {
          const wire = err instanceof MfaError ? err.wireMessage : 'internal error';
          await audit(ctx, userAudit(s, action, { info: { error: wire } }));
        }
        errorPage(ctx, err, s);
      }
    };

  /** A POST of a session: the session and its synchronizer token, else 403 (nothing is done, nothing is audited). */
  const posted = (action: string, fn: (ctx: Ctx, s: SelfserviceSession) => Promise<void>) =>
    handle(null, async (ctx, s) => {
      if (!s) {
        clearSession(ctx);
        send(ctx, 403, forbidden('Your session has ended. Please log in again.'));
        return;
      }
      if (!csrfMatches(s, ctx.state.params.get('csrf'))) {
        send(ctx, 403, forbidden('The form was not sent from this page (its security token is missing or wrong). Please reload the page.'));
        return;
      }
      try {
        await fn(ctx, s);
      } catch (err) {
        const wire = err instanceof MfaError ? err.wireMessage : 'internal error';
        await audit(ctx, userAudit(s, action, { info: { error: wire } }));
        throw err;
      }
    });

  const forbidden = (text: string) =>
    page(base, 'Not allowed', html`<h1>Not allowed</h1>${notice({ kind: 'error', text })}<p><a href="${base}">Go to the login</a></p>`);

  const logoutButton = (s: SelfserviceSession | null): Html =>
    s
      ? form(
          `${base}/logout`,
          s.csrf,
          html`<span class="hint">${s.user.name}@${s.user.realm}</span> <button type="submit" class="secondary">Log out</button>`,
          {
            label: 'Log out',
          },
        )
      : html``;

  // ---------------------------------------------------------------------------------------------------------------
  // Pages

  const loginPage = (ctx: Ctx, status: number, n: Notice | null, user = '') => {
    const token = crypto.randomBytes(24).toString('base64url');
    ctx.append('Set-Cookie', cookie(loginCookie, token, 1800));
    const body = html`<h1>Log in</h1>
${notice(n)}
<p>Log in with your user name and password to manage your second-factor devices.</p>
<form method="post" action="${base}/login">
<input type="hidden" name="login_csrf" value="${token}">
<label for="user">User name</label>
<input type="text" id="user" name="user" autocomplete="username" required autofocus value="${user}">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Continue</button>
</form>`;
    send(ctx, status, page(base, 'Log in', body));
  };

  const secondFactorPage = async (ctx: Ctx, s: SelfserviceSession, status: number, n: Notice | null, messages: readonly string[] = []) => {
    const opts = await secondFactorOptions(deps, s);
    const waiting = s.transactionId !== null || messages.length > 0;
    const otpForm = opts.otp
      ? html`<section aria-labelledby="otp-h"><h2 id="otp-h">Code from your authenticator</h2>
${form(
  `${base}/login/otp`,
  s.csrf,
  html`<label for="otp">One-time code</label>
<input type="text" id="otp" name="otp" class="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]*" maxlength="10" required${waiting ? '' : html` autofocus`}>
<button type="submit">Log in</button>`,
)}</section>`
      : html``;
    const pushForm = opts.push
      ? waiting
        ? html`<section aria-labelledby="push-h"><h2 id="push-h">Push notification</h2>
${messages.map((m) => html`<p class="notice info" role="status">${m}</p>`)}
<p>Approve the login on your phone, then continue. If your phone shows you a code to type, enter it here.</p>
${form(
  `${base}/login/push/finish`,
  s.csrf,
  html`<label for="code">Code from the phone (only if asked)</label>
<input type="text" id="code" name="code" class="code" inputmode="numeric" autocomplete="off" maxlength="10">
<button type="submit" autofocus>Continue</button>`,
)}</section>`
        : html`<section aria-labelledby="push-h"><h2 id="push-h">Push notification</h2>
${form(`${base}/login/push`, s.csrf, html`<p>Send a login request to your phone.</p><button type="submit">Send a push to my phone</button>`)}
</section>`
      : html``;
    const body = html`<h1>Second step: confirm it is you</h1>
${notice(n)}
<p>Hello ${s.user.givenname ?? s.user.name}. Your password was right; now prove you have one of your devices.</p>
<div class="grid">${otpForm}${pushForm}</div>
${opts.otp || opts.push ? html`` : html`<p>None of your tokens can be used here. Ask your administrator.</p>`}`;
    send(ctx, status, page(base, 'Second step', body, logoutButton(s)));
  };

  const tokenCard = (s: SelfserviceSession, t: TokenRecord): Html => {
    const state =
      t.rolloutState === 'clientwait'
        ? 'Not finished: waiting for the first code or the phone'
        : t.revoked
          ? 'Revoked'
          : !t.active
            ? 'Disabled'
            : t.failCount >= t.maxFail
              ? 'Locked (too many wrong codes)'
              : 'Active';
    const label = t.description || TYPE_TITLES[t.type] || t.type;
    const id = `t-${t.serial}`;
    const actions = mayChange(s, t)
      ? html`<div class="actions">
${form(
  `${base}/tokens/rename`,
  s.csrf,
  html`<input type="hidden" name="serial" value="${t.serial}">
<label for="d-${t.serial}">Description</label>
<input type="text" id="d-${t.serial}" name="description" maxlength="255" value="${t.description}">
<button type="submit" class="secondary">Rename</button>`,
  { label: `Rename ${label}` },
)}
${form(
  `${base}/tokens/remove`,
  s.csrf,
  html`<input type="hidden" name="serial" value="${t.serial}">
<label class="check"><input type="checkbox" name="confirm" value="yes" required> I no longer use this device</label>
<button type="submit" class="danger">Remove</button>`,
  { label: `Remove ${label}` },
)}
</div>`
      : html`<p class="hint">Log in with one of your devices to change this one.</p>`;
    return html`<article class="card" aria-labelledby="${id}">
<h3 id="${id}">${label}</h3>
<p class="meta">Serial <code>${t.serial}</code> · type ${t.type} · status: <strong>${state}</strong> · created ${when(t.createdAt)}${
      t.lastAuthAt ? html` · last used ${when(t.lastAuthAt)}` : ''
    }</p>
${actions}
</article>`;
  };

  const when = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';

  const dashboard = async (ctx: Ctx, s: SelfserviceSession, n: Notice | null) => {
    const tokens = await ownTokens(deps, s);
    const logins = await recentLogins(deps, s);
    const usableCount = tokens.filter((t) => t.active && !t.revoked && t.rolloutState !== 'clientwait').length;
    const mayEnroll = s.stage === 'full' || usableCount === 0;
    const enroll = mayEnroll
      ? form(
          `${base}/tokens/enroll`,
          s.csrf,
          html`<fieldset><legend>Type of device</legend>
${cfg.enrollTypes.map(
  (type, i) =>
    html`<label class="check"><input type="radio" name="type" value="${type}"${i === 0 ? html` checked` : ''}> ${TYPE_TITLES[type] ?? type}</label>`,
)}
</fieldset>
<label for="new-description">Description (for example "work phone")</label>
<input type="text" id="new-description" name="description" maxlength="255">
<button type="submit">Enroll</button>`,
        )
      : html`<p>You logged in without a second factor to enroll your first token; log in with it to enroll more.</p>`;
    const outcomeText: Record<string, string> = { ACCEPT: 'Accepted', REJECT: 'Rejected', DECLINED: 'Declined on the phone' };
    const loginRows = logins.length
      ? html`<table>
<caption class="hint">The newest first, at most ${cfg.recentLogins}.</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Result</th><th scope="col">Where</th><th scope="col">From</th><th scope="col">Detail</th></tr></thead>
<tbody>${logins.map(
          (r) =>
            html`<tr><td>${when(r.time)}</td><td><strong>${outcomeText[r.outcome] ?? r.outcome}</strong></td><td>${
              r.action.startsWith('selfservice') ? 'This page' : 'Login'
            }</td><td>${r.client ?? ''}</td><td>${typeof r.info.message === 'string' ? r.info.message : ''}</td></tr>`,
        )}</tbody></table>`
      : html`<p>No logins recorded yet.</p>`;
    const body = html`<h1>Your devices</h1>
${notice(n)}
<section aria-labelledby="devices-h"><h2 id="devices-h">Devices (${tokens.length})</h2>
${tokens.length ? tokens.map((t) => tokenCard(s, t)) : html`<p>You have no device yet.</p>`}
</section>
<section aria-labelledby="enroll-h"><h2 id="enroll-h">Add a device</h2>${enroll}</section>
<section aria-labelledby="logins-h"><h2 id="logins-h">Recent logins and declines</h2>${loginRows}</section>`;
    send(ctx, 200, page(base, 'Your devices', body, logoutButton(s)));
  };

  const verifyForm = (s: SelfserviceSession, serial: string) =>
    form(
      `${base}/tokens/verify`,
      s.csrf,
      html`<input type="hidden" name="serial" value="${serial}">
<label for="first-otp">The code your app shows now</label>
<input type="text" id="first-otp" name="otp" class="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]*" maxlength="8" required>
<button type="submit">Confirm</button>`,
    );

  // ---------------------------------------------------------------------------------------------------------------
  // Routes

  router.get('/style.css', (ctx) => {
    for (const [k, v] of Object.entries(headers)) ctx.set(k, v);
    ctx.set('Cache-Control', 'no-cache');
    ctx.type = 'text/css; charset=utf-8';
    ctx.body = STYLE;
  });

  router.get(
    '/',
    handle(null, async (ctx, s) => {
      const done = DONE[ctx.state.params.get('done') ?? ''];
      const n: Notice | null = done ? { kind: 'info', text: done } : null;
      if (!s) {
        if (readCookie(ctx, cookieName)) clearSession(ctx);
        loginPage(ctx, 200, ctx.state.params.get('done') === 'logout' ? n : null);
      } else if (s.stage === 'password') await secondFactorPage(ctx, s, 200, null);
      else await dashboard(ctx, s, n);
    }),
  );

  router.post(
    '/login',
    handle('login', async (ctx, current) => {
      const given = ctx.state.params.get('login_csrf') ?? '';
      const expected = readCookie(ctx, loginCookie) ?? '';
      if (!given || given.length !== expected.length || !crypto.timingSafeEqual(Buffer.from(given), Buffer.from(expected))) {
        send(ctx, 403, forbidden('The login form was not sent from this page. Please reload the page and try again.'));
        return;
      }
      const user = param(ctx, 'user', 255).trim();
      const password = param(ctx, 'password');
      if (!user || !password) {
        loginPage(ctx, 400, { kind: 'error', text: 'Enter your user name and your password.' }, user);
        return;
      }
      if (current) await endSession(deps, current); // a new login ends the browser's old session
      const step = await passwordLogin(deps, { user, password }, origin(ctx));
      const who = step.kind === 'session' ? step.created.session.user : step.user;
      const draft = userAudit(null, 'login', {
        username: who?.name ?? user,
        realm: who?.realm ?? null,
        success: step.result.outcome === 'ACCEPT',
        outcome: step.result.outcome,
        policies: step.result.policies,
        info: { message: step.result.message, step: 'password' },
      });
      const stored = await audit(ctx, draft);
      if (step.kind === 'rejected') {
        loginPage(ctx, 401, { kind: 'error', text: step.result.message }, user);
        return;
      }
      if (!stored && step.result.outcome === 'ACCEPT') {
        await endSession(deps, step.created.session); // fail closed: no login without its audit row
        throw new MfaError(500, -600, 'A database error occurred.');
      }
      ctx.append('Set-Cookie', cookie(loginCookie, '', 0));
      setSession(ctx, step.created);
      redirect(ctx);
    }),
  );

  /** The audit row of a second-factor step, and the answer. */
  const secondStep = async (ctx: Ctx, s: SelfserviceSession, step: SecondStep) => {
    const stored = await audit(
      ctx,
      userAudit(s, 'login', {
        success: step.kind === 'in',
        outcome: step.result.outcome,
        serials: step.result.serials,
        policies: step.result.policies,
        info: { message: step.result.message, step: 'second_factor' },
      }),
    );
    if (step.kind === 'in') {
      if (!stored) {
        await endSession(deps, step.created.session);
        throw new MfaError(500, -600, 'A database error occurred.');
      }
      setSession(ctx, step.created);
      redirect(ctx, '', 'login');
      return;
    }
    if (step.kind === 'challenge') {
      await secondFactorPage(ctx, { ...s, transactionId: 'sent' }, 200, null, step.messages);
      return;
    }
    if (step.kind === 'pending') {
      await secondFactorPage(
        ctx,
        s,
        200,
        { kind: 'info', text: 'The phone has not answered yet. Approve the login there, then continue.' },
        ['Waiting for your phone.'],
      );
      return;
    }
    const text =
      step.result.outcome === 'DECLINED'
        ? 'The login was declined on the phone. If that was not you, tell your administrator.'
        : `The second step failed: ${step.result.message}.`;
    const fresh = step.result.outcome === 'DECLINED' ? { ...s, transactionId: null } : s;
    await secondFactorPage(ctx, fresh, 401, { kind: 'error', text });
  };

  router.post(
    '/login/otp',
    posted('login', async (ctx, s) => secondStep(ctx, s, await otpLogin(deps, s, param(ctx, 'otp', 20).trim(), origin(ctx)))),
  );
  router.post(
    '/login/push',
    posted('login', async (ctx, s) => secondStep(ctx, s, await pushLogin(deps, s, origin(ctx)))),
  );
  router.post(
    '/login/push/finish',
    posted('login', async (ctx, s) => secondStep(ctx, s, await finishPushLogin(deps, s, param(ctx, 'code', 20).trim(), origin(ctx)))),
  );

  router.post(
    '/logout',
    posted('logout', async (ctx, s) => {
      await endSession(deps, s);
      await audit(ctx, userAudit(s, 'logout', { success: true, outcome: 'OK' }));
      clearSession(ctx);
      redirect(ctx, '', 'logout');
    }),
  );

  /** The token actions need a logged-in session (`full`, or `first` by the first-enrollment policy). */
  const loggedIn = (s: SelfserviceSession): boolean => s.stage !== 'password';

  router.post(
    '/tokens/enroll',
    posted('enroll', async (ctx, s) => {
      if (!loggedIn(s)) return redirect(ctx);
      const type = param(ctx, 'type', 30);
      const e = await enrollOwn(deps, s, type, param(ctx, 'description', 255).trim(), browser(ctx));
      await audit(
        ctx,
        userAudit(s, 'enroll', { success: true, outcome: 'OK', serials: [e.token.serial], policies: e.policies, info: { type } }),
      );
      const isTotp = type === 'totp';
      const body = html`<h1>Add a device: ${TYPE_TITLES[type] ?? type}</h1>
<ol>
${
  isTotp
    ? html`<li>Open your authenticator app and add an account by scanning this QR code.</li>
<li>Type the code the app then shows and confirm.</li>`
    : html`<li>Open the ${type === 'push' ? 'privacyIDEA' : 'eduMFA'} authenticator app and scan this QR code.</li>
<li>The app registers itself with the server. Then go back to your devices: the token shows as Active.</li>`
}
</ol>
<img class="qr" src="${e.qr}" alt="QR code to scan with your app${isTotp ? '. The same secret is given as text below.' : ''}" width="240" height="240">
${
  isTotp && e.secret
    ? html`<p>Cannot scan? Enter this secret in the app (time-based, ${e.token.info.timeStep ?? '30'} seconds, ${e.token.otpLen} digits): <code class="secret">${e.secret}</code></p>
${verifyForm(s, e.token.serial)}`
    : html`<p class="hint">Serial <code>${e.token.serial}</code>. The code is valid for a limited time.</p>`
}
<p><a href="${base}">Back to your devices</a></p>`;
      send(ctx, 200, page(base, 'Add a device', body, logoutButton(s)));
    }),
  );

  router.post(
    '/tokens/verify',
    posted('verify', async (ctx, s) => {
      if (!loggedIn(s)) return redirect(ctx);
      const serial = param(ctx, 'serial', 40);
      const ok = await verifyTotp(deps, s, serial, param(ctx, 'otp', 20).trim(), origin(ctx));
      await audit(ctx, userAudit(s, 'verify', { success: ok, outcome: ok ? 'OK' : 'REJECT', serials: [serial] }));
      if (ok) return redirect(ctx, '', 'enrolled');
      const body = html`<h1>Confirm your new device</h1>
${notice({ kind: 'error', text: 'That code was not right. Check the time on your phone and type the code the app shows now.' })}
${verifyForm(s, serial)}
<p><a href="${base}">Back to your devices</a></p>`;
      send(ctx, 400, page(base, 'Confirm your new device', body, logoutButton(s)));
    }),
  );

  router.post(
    '/tokens/rename',
    posted('rename', async (ctx, s) => {
      if (!loggedIn(s)) return redirect(ctx);
      const serial = param(ctx, 'serial', 40);
      await renameOwn(deps, s, serial, param(ctx, 'description', 255).trim());
      await audit(ctx, userAudit(s, 'rename', { success: true, outcome: 'OK', serials: [serial] }));
      redirect(ctx, '', 'renamed');
    }),
  );

  router.post(
    '/tokens/remove',
    posted('remove', async (ctx, s) => {
      if (!loggedIn(s)) return redirect(ctx);
      const serial = param(ctx, 'serial', 40);
      if (ctx.state.params.get('confirm') !== 'yes') {
        await dashboard(ctx, s, { kind: 'error', text: 'Tick "I no longer use this device" to remove it.' });
        ctx.status = 400;
        return;
      }
      await removeOwn(deps, s, serial);
      await audit(ctx, userAudit(s, 'remove', { success: true, outcome: 'OK', serials: [serial] }));
      redirect(ctx, '', 'removed');
    }),
  );

  return router;
}
