import test from 'ava';
import jsqrImport from 'jsqr';
import { PNG } from 'pngjs';
import { qrDataUri, qrTerminal } from '../../tokens/qr.ts';
import { generateSerial, isValidSerial } from '../../tokens/serial.ts';

// jsqr is CommonJS with an `exports.default`: under tsx the default import is the function itself.
type JsQr = typeof jsqrImport.default;
const jsQR = (typeof jsqrImport === 'function' ? jsqrImport : jsqrImport.default) as JsQr;

function decodeQrDataUri(uri: string): string | null {
  const png = PNG.sync.read(Buffer.from(uri.replace(/^data:image\/png;base64,/, ''), 'base64'));
  return jsQR(new Uint8ClampedArray(png.data), png.width, png.height)?.data ?? null;
}

test('generateSerial: prefix + 8 upper hex', (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const s = generateSerial('OATH');
    t.regex(s, /^OATH[0-9A-F]{8}$/);
    t.true(isValidSerial(s));
    seen.add(s);
  }
  t.true(seen.size > 45);
});

test('isValidSerial', (t) => {
  for (const ok of ['A', 'OATH0001', 'my_token.1:2-3', 'x'.repeat(40)]) t.true(isValidSerial(ok), ok);
  for (const bad of ['', 'x'.repeat(41), 'OATH*', 'a b', 'a/b', 'ä', 'a%']) t.false(isValidSerial(bad), bad);
});

test('qrDataUri round-trips through a QR decoder', async (t) => {
  const text = 'otpauth://totp/pushgate%3AAlice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&period=30&digits=6&algorithm=SHA1&issuer=pushgate';
  const uri = await qrDataUri(text);
  t.regex(uri, /^data:image\/png;base64,/);
  t.is(decodeQrDataUri(uri), text);
});

test('qrTerminal renders half blocks', async (t) => {
  const out = await qrTerminal('seed://3132333435');
  t.true(out.split('\n').length > 10);
  t.regex(out, /[▀▄█]/);
});
