import test from 'ava';
import { randomBytes } from 'node:crypto';
import { base32Decode, base32Encode } from '../../tokens/base32.ts';
import { ParameterError } from '../../core/errors.ts';

// RFC 4648 §10 test vectors
const VECTORS: ReadonlyArray<readonly [string, string]> = [
  ['', ''],
  ['f', 'MY======'],
  ['fo', 'MZXQ===='],
  ['foo', 'MZXW6==='],
  ['foob', 'MZXW6YQ='],
  ['fooba', 'MZXW6YTB'],
  ['foobar', 'MZXW6YTBOI======'],
];

test('RFC 4648 vectors encode with padding', (t) => {
  for (const [plain, encoded] of VECTORS) t.is(base32Encode(Buffer.from(plain)), encoded);
});

test('encode without padding', (t) => {
  for (const [plain, encoded] of VECTORS) t.is(base32Encode(Buffer.from(plain), { padding: false }), encoded.replace(/=/g, ''));
});

test('decode: padded, unpadded, lower case, spaces', (t) => {
  for (const [plain, encoded] of VECTORS) {
    t.is(base32Decode(encoded).toString(), plain);
    t.is(base32Decode(encoded.replace(/=/g, '')).toString(), plain);
    t.is(base32Decode(encoded.toLowerCase()).toString(), plain);
  }
  t.is(base32Decode('mzxw 6ytb oi').toString(), 'foobar');
  t.is(base32Decode(' MZXW6YTB\nOI======\t').toString(), 'foobar');
  t.is(base32Decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ').toString(), '12345678901234567890');
});

test('round trips random data of every length mod 5', (t) => {
  for (let n = 0; n < 70; n++) {
    const data = randomBytes(n);
    t.deepEqual(base32Decode(base32Encode(data)), data);
    t.deepEqual(base32Decode(base32Encode(data, { padding: false })), data);
  }
});

test('decode errors are ParameterErrors', (t) => {
  for (const bad of ['MZXW1===', 'MZXW8YTB', 'MZ!W6YTB', 'MZ=W6YTB', 'MZXW6YTBO', 'MZX', 'MZXW6Y', 'é']) {
    const err = t.throws(() => base32Decode(bad), { instanceOf: ParameterError }, bad);
    t.is(err?.code, 905);
  }
});
