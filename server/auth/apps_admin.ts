/**
 * Administering applications (issue 15; `pushgate app …`). An application's secret (32 random bytes, base64url) is
 * shown once, when it is made or rotated, and stored encrypted with the secrets key (server/store/secrets.ts):
 * verifying an HMAC needs the secret itself, so a hash would not do.
 */
import crypto from 'node:crypto';
import type { Deps } from '../deps.ts';
import { ConfigAdminError, NotFoundError } from '../../core/errors.ts';
import type { ApplicationRecord } from '../store/apps_repo.ts';
import { COLUMN_LIMITS } from '../store/limits.ts';
import { WEBHOOK_EVENTS } from './webhooks.ts';

const NAME = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${COLUMN_LIMITS.applications.name - 1}}$`);

export const newAppSecret = (): string => crypto.randomBytes(32).toString('base64url');
const newAppId = (): string => `app_${crypto.randomBytes(12).toString('hex')}`;

export function checkWebhook(url: string | null, events: readonly string[] | null): void {
  if (url !== null) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigAdminError(`Invalid webhook URL ${url}.`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ConfigAdminError('The webhook URL must be http(s).');
    if (url.length > COLUMN_LIMITS.applications.webhook_url) throw new ConfigAdminError('The webhook URL is too long.');
  }
  for (const e of events ?? [])
    if (!(WEBHOOK_EVENTS as readonly string[]).includes(e))
      throw new ConfigAdminError(`Unknown webhook event ${e} (known: ${WEBHOOK_EVENTS.join(', ')}).`);
}

export async function requireApp(deps: Deps, name: string): Promise<ApplicationRecord> {
  const app = await deps.store.apps.byName(name);
  if (!app) throw new NotFoundError(`No application named ${name}.`);
  return app;
}

export async function addApp(
  deps: Deps,
  opts: { name: string; realm?: string | null; webhookUrl?: string | null; webhookEvents?: readonly string[] | null },
): Promise<{ app: ApplicationRecord; secret: string }> {
  if (!NAME.test(opts.name))
    throw new ConfigAdminError(`Invalid application name (letters, digits, . _ -; at most ${COLUMN_LIMITS.applications.name} characters).`);
  if (opts.realm && !deps.realms.get(opts.realm)) throw new ConfigAdminError(`Unknown realm ${opts.realm}.`);
  checkWebhook(opts.webhookUrl ?? null, opts.webhookEvents ?? null);
  const secret = newAppSecret();
  const inserted = await deps.store.apps.insert({
    id: newAppId(),
    name: opts.name,
    realm: opts.realm ?? null,
    secret,
    webhookUrl: opts.webhookUrl ?? null,
    webhookEvents: opts.webhookEvents ?? null,
    now: deps.clock.now(),
  });
  if (!inserted) throw new ConfigAdminError(`An application named ${opts.name} exists already.`);
  deps.events.emit('app.changed', { name: opts.name, action: 'add' });
  return { app: await requireApp(deps, opts.name), secret };
}

export async function rotateAppSecret(deps: Deps, name: string): Promise<{ app: ApplicationRecord; secret: string }> {
  const app = await requireApp(deps, name);
  const secret = newAppSecret();
  await deps.store.apps.setSecret(app.id, secret, deps.clock.now());
  deps.events.emit('app.changed', { name, action: 'rotate-secret' });
  return { app, secret };
}

export async function setAppActive(deps: Deps, name: string, active: boolean): Promise<ApplicationRecord> {
  const app = await requireApp(deps, name);
  await deps.store.apps.setActive(app.id, active, deps.clock.now());
  deps.events.emit('app.changed', { name, action: active ? 'enable' : 'disable' });
  return requireApp(deps, name);
}

export async function setAppWebhook(
  deps: Deps,
  name: string,
  url: string | null,
  events: readonly string[] | null,
): Promise<ApplicationRecord> {
  const app = await requireApp(deps, name);
  checkWebhook(url, events);
  await deps.store.apps.setWebhook(app.id, url, events, deps.clock.now());
  deps.events.emit('app.changed', { name, action: 'webhook' });
  return requireApp(deps, name);
}

export async function deleteApp(deps: Deps, name: string): Promise<void> {
  const app = await requireApp(deps, name);
  await deps.store.apps.delete(app.id);
  deps.events.emit('app.changed', { name, action: 'delete' });
}

/** The fields `app list|show --json` and the CLI's text print (never the secret). */
export function appView(a: ApplicationRecord): Record<string, unknown> {
  return {
    id: a.id,
    name: a.name,
    realm: a.realm,
    active: a.active,
    webhook_url: a.webhookUrl,
    webhook_events: a.webhookEvents,
    created_at: a.createdAt,
    updated_at: a.updatedAt,
  };
}
