/**
 * The self-service page in a real browser: Playwright (playwright-core) driving Debian's chromium, one launch for
 * the file, one flow — log in with password + TOTP → enroll a TOTP token (its secret read from the QR code image)
 * → rename it → remove it → see the recent logins. A screenshot of every step is kept in
 * tests/.artifacts/selfservice/ (git-ignored). Skipped, with the reason in the title, when /usr/bin/chromium is
 * missing (.ci/run installs it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { PNG } from 'pngjs';
import jsqrImport from 'jsqr';
import { enroll, world } from '../helpers/kit.ts';
import { hotpValue } from '../../tokens/otp.ts';
import { base32Decode } from '../../tokens/base32.ts';
import { SELFSERVICE_USERS, USER_PASSWORD, selfserviceConfig } from '../helpers/selfservice_client.ts';

// jsqr is CommonJS: its default export is the function, or the module object with it as `default`.
type JsQr = typeof jsqrImport.default;
const jsQR = (typeof jsqrImport === 'function' ? jsqrImport : jsqrImport.default) as JsQr;

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve('tests/.artifacts/selfservice');
const KEY = '3132333435363738393031323334353637383930';

/** The text of a QR code in a `data:image/png;base64,…` URL. */
function readQr(dataUrl: string): string {
  const png = PNG.sync.read(Buffer.from(dataUrl.replace(/^data:image\/png;base64,/, ''), 'base64'));
  const code = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
  if (!code) throw new Error('no QR code in the image');
  return code.data;
}

if (!fs.existsSync(CHROMIUM)) {
  test.skip(`self-service in Chromium: skipped — ${CHROMIUM} is missing (apt-get install --no-install-recommends chromium)`, () => {});
} else {
  test('self-service in Chromium: password + TOTP login, enroll TOTP from the QR code, rename, remove, recent logins', async (t) => {
    const { chromium } = await import('playwright-core');
    const w = await world(t, { config: selfserviceConfig(), files: { 'users.yaml': SELFSERVICE_USERS } });
    await enroll(w, { type: 'totp', otpkey: KEY, user: 'alice', serial: 'TOTPALICE', description: 'Office phone' });
    const totp = (hex: string) => hotpValue(Buffer.from(hex, 'hex'), Math.floor(w.clock.now() / 30_000), 6, 'sha1');

    fs.rmSync(ARTIFACTS, { recursive: true, force: true });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'pushgate-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1000, height: 800 },
    });
    t.teardown(async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    });
    const page = context.pages()[0] ?? (await context.newPage());
    // Anything the Content Security Policy blocks, or a script error, shows up here.
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    let n = 0;
    const shot = async (name: string) => {
      await page.screenshot({ path: path.join(ARTIFACTS, `${String(++n).padStart(2, '0')}-${name}.png`), fullPage: true });
    };

    // 1. The login form: the user field has the focus; labels name the fields.
    await page.goto(`${w.url}/selfservice`);
    t.is(await page.title(), 'Log in – pushgate self-service');
    t.is(await page.evaluate(() => document.activeElement?.id), 'user');
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password').fill(USER_PASSWORD);
    await shot('login');
    await page.getByRole('button', { name: 'Continue' }).click();

    // 2. The second step: the TOTP code.
    await page.getByRole('heading', { level: 1, name: 'Second step: confirm it is you' }).waitFor();
    await page.getByLabel('One-time code').fill(totp(KEY));
    await shot('second-step');
    await page.getByRole('button', { name: 'Log in' }).click();

    // 3. The devices.
    await page.getByRole('heading', { level: 1, name: 'Your devices' }).waitFor();
    t.true(await page.getByText('You are logged in.').isVisible());
    t.true(await page.getByRole('heading', { level: 3, name: 'Office phone' }).isVisible());
    await shot('devices');

    // 4. Enroll a TOTP token: the secret is read from the QR code image, as a phone would.
    await page.getByLabel('Authenticator app (TOTP code)').check();
    await page.getByLabel('Description (for example "work phone")').fill('New phone');
    await page.getByRole('button', { name: 'Enroll' }).click();
    await page.getByRole('heading', { level: 1, name: 'Add a device: Authenticator app (TOTP code)' }).waitFor();
    const qr = await page.getByRole('img', { name: /QR code/ }).getAttribute('src');
    const otpauth = new URL(readQr(qr!));
    t.is(otpauth.protocol, 'otpauth:');
    const secret = otpauth.searchParams.get('secret')!;
    t.is(await page.locator('code.secret').textContent(), secret, 'the same secret as text, for typing it in');
    await shot('enroll-qr');
    await page.getByLabel('The code your app shows now').fill(totp(base32Decode(secret).toString('hex')));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByText('The token is ready to use.').waitFor();
    t.true(await page.getByRole('heading', { level: 3, name: 'New phone' }).isVisible());
    await shot('enrolled');

    // 5. Rename it.
    const card = page.getByRole('article', { name: 'New phone' });
    await card.getByLabel('Description').fill('Tablet');
    await card.getByRole('button', { name: 'Rename' }).click();
    await page.getByText('The description was saved.').waitFor();
    t.true(await page.getByRole('heading', { level: 3, name: 'Tablet' }).isVisible());
    await shot('renamed');

    // 6. Remove it (the checkbox confirms).
    const tablet = page.getByRole('article', { name: 'Tablet' });
    await tablet.getByLabel('I no longer use this device').check();
    await tablet.getByRole('button', { name: 'Remove' }).click();
    await page.getByText('The token was removed.').waitFor();
    t.is(await page.getByRole('article').count(), 1);
    t.is((await w.deps.store.tokens.list({ username: 'alice', realm: 'default' })).length, 1);
    await shot('removed');

    // 7. The recent logins: the page's own login (the password step and the TOTP step).
    const logins = page.getByRole('table');
    await logins.scrollIntoViewIfNeeded();
    t.true(await logins.getByRole('cell', { name: 'Accepted' }).first().isVisible());
    await shot('recent-logins');

    t.deepEqual(problems, [], 'no console errors (the CSP blocked nothing the page needs)');
    t.is(fs.readdirSync(ARTIFACTS).length, 8);
  });
}
