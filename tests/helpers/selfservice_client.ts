/**
 * A small browser for the self-service page's route tests: fetch with a cookie jar (only what the server sets),
 * no redirects followed automatically (tests look at the 303s), and the forms' hidden tokens read from the HTML.
 */
import type { TestWorld } from './test_app.ts';
import { cheapHasher, policy, usersYaml } from './kit.ts';

export interface Page {
  status: number;
  headers: Headers;
  text: string;
}

export class SelfserviceClient {
  readonly jar = new Map<string, string>();
  readonly base: string;
  private readonly url: string;
  /** The last page's hidden `csrf` value (the session's synchronizer token). */
  csrf = '';
  loginCsrf = '';
  /** Sent with every request (e.g. X-Forwarded-For through a "proxy"). */
  headers: Record<string, string> = {};
  constructor(w: TestWorld, base = '/selfservice') {
    this.url = w.url;
    this.base = base;
  }

  private cookieHeader(): string {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  private remember(headers: Headers): void {
    for (const line of headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/Max-Age=0/i.test(line) || value === '') this.jar.delete(name);
      else this.jar.set(name, value);
    }
  }

  private read(text: string): void {
    const c = /name="csrf" value="([^"]+)"/.exec(text);
    if (c) this.csrf = c[1]!;
    const l = /name="login_csrf" value="([^"]+)"/.exec(text);
    if (l) this.loginCsrf = l[1]!;
  }

  async get(path = ''): Promise<Page> {
    const r = await fetch(`${this.url}${this.base}${path}`, {
      headers: { ...this.headers, cookie: this.cookieHeader() },
      redirect: 'manual',
    });
    this.remember(r.headers);
    const text = await r.text();
    this.read(text);
    return { status: r.status, headers: r.headers, text };
  }

  /** POST a form; `csrf` is added unless given (the session's, or the login form's for /login). */
  async post(path: string, fields: Record<string, string>, opts: { follow?: boolean } = {}): Promise<Page> {
    const body = new URLSearchParams(
      path === '/login' ? { login_csrf: this.loginCsrf, ...fields } : { csrf: this.csrf, ...fields },
    ).toString();
    const r = await fetch(`${this.url}${this.base}${path}`, {
      method: 'POST',
      headers: { ...this.headers, cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
      body,
      redirect: 'manual',
    });
    this.remember(r.headers);
    const text = await r.text();
    this.read(text);
    if (opts.follow !== false && r.status === 303) {
      const loc = r.headers.get('location')!;
      return this.get(loc.slice(this.base.length));
    }
    return { status: r.status, headers: r.headers, text };
  }

  /** Password step from a fresh login page (the redirect followed unless `follow` is false). */
  async login(user: string, password: string, opts: { follow?: boolean } = {}): Promise<Page> {
    await this.get();
    return this.post('/login', { user, password }, opts);
  }
}

export const USER_PASSWORD = 'correct horse battery';
const HASH = await cheapHasher.hash(USER_PASSWORD);

/** Users: alice and bob (tokens are enrolled per test), carol (never has a token). */
export const SELFSERVICE_USERS = usersYaml([
  { username: 'alice', givenname: 'Alice', password_hash: HASH },
  { username: 'bob', password_hash: HASH },
  { username: 'carol', password_hash: HASH },
]);

/** A world config with the self-service page on (plain HTTP: cookie_secure false) and the users above. */
export function selfserviceConfig(over: Record<string, unknown> = {}, policies: unknown[] = []): Record<string, unknown> {
  return {
    realms: [{ name: 'default', default: true, users: { type: 'file', path: 'users.yaml' } }],
    selfservice: { enabled: true, cookie_secure: false, ...over },
    policies: [policy('push-enroll', 'enrollment', { edupush_firebase_configuration: 'poll only' }), ...policies],
  };
}
