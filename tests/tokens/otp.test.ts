import test from 'ava';
import { findHotp, findTotp, hotpValue, isOtpFormat, otpEquals, totpStep, type OtpHash } from '../../tokens/otp.ts';

const KEY20 = Buffer.from('12345678901234567890', 'ascii');
const KEY32 = Buffer.from('12345678901234567890123456789012', 'ascii');
const KEY64 = Buffer.from('1234567890123456789012345678901234567890123456789012345678901234', 'ascii');

// RFC 4226 Appendix D
const RFC4226 = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];

test('RFC 4226 Appendix D vectors', (t) => {
  RFC4226.forEach((expected, counter) => {
    t.is(hotpValue(KEY20, counter, 6, 'sha1'), expected);
  });
});

// RFC 6238 Appendix B: [time, sha1, sha256, sha512], 8 digits, 30 s steps
const RFC6238: ReadonlyArray<readonly [number, string, string, string]> = [
  [59, '94287082', '46119246', '90693936'],
  [1111111109, '07081804', '68084774', '25091201'],
  [1111111111, '14050471', '67062674', '99943326'],
  [1234567890, '89005924', '91819424', '93441116'],
  [2000000000, '69279037', '90698825', '38618901'],
  [20000000000, '65353130', '77737706', '47863826'],
];

test('RFC 6238 Appendix B vectors (SHA1/SHA256/SHA512, 8 digits)', (t) => {
  const keys: ReadonlyArray<readonly [OtpHash, Buffer]> = [
    ['sha1', KEY20],
    ['sha256', KEY32],
    ['sha512', KEY64],
  ];
  for (const [seconds, ...values] of RFC6238) {
    const step = totpStep(seconds * 1000, 30);
    keys.forEach(([hash, key], i) => {
      t.is(hotpValue(key, step, 8, hash), values[i], `${hash} at ${seconds}`);
      t.is(findTotp(key, values[i]!, seconds * 1000, 30, 0, 8, hash, 0), step, `findTotp ${hash} at ${seconds}`);
    });
  }
});

test('hotpValue zero-pads and rejects bad counters', (t) => {
  // 8-digit RFC 4226 key at counter 0: truncated value 1284755224 → 84755224
  t.is(hotpValue(KEY20, 0, 8, 'sha1'), '84755224');
  t.throws(() => hotpValue(KEY20, -1, 6, 'sha1'), { instanceOf: RangeError });
  t.throws(() => hotpValue(KEY20, 1.5, 6, 'sha1'), { instanceOf: RangeError });
  // a value with a leading zero (RFC 6238 at 1111111109) keeps it
  t.is(hotpValue(KEY20, totpStep(1111111109_000, 30), 8, 'sha1'), '07081804');
});

test('isOtpFormat / otpEquals', (t) => {
  t.true(isOtpFormat('012345', 6));
  t.false(isOtpFormat('01234', 6));
  t.false(isOtpFormat('01234a', 6));
  t.false(isOtpFormat('٠١٢٣٤٥', 6)); // non-ASCII digits
  t.false(isOtpFormat(' 12345', 6));
  t.true(otpEquals('123456', '123456'));
  t.false(otpEquals('123456', '123457'));
  t.false(otpEquals('123456', '1234567'));
});

test('findHotp searches [from, from + window)', (t) => {
  t.is(findHotp(KEY20, RFC4226[0]!, 0, 10, 6, 'sha1'), 0);
  t.is(findHotp(KEY20, RFC4226[9]!, 0, 10, 6, 'sha1'), 9);
  t.is(findHotp(KEY20, RFC4226[9]!, 0, 9, 6, 'sha1'), null, 'just outside the look-ahead window');
  t.is(findHotp(KEY20, RFC4226[5]!, 5, 1, 6, 'sha1'), 5);
  t.is(findHotp(KEY20, RFC4226[4]!, 5, 10, 6, 'sha1'), null, 'below the start counter (replay)');
  t.is(findHotp(KEY20, '000000', 0, 10, 6, 'sha1'), null);
  t.is(findHotp(KEY20, '75522', 0, 10, 6, 'sha1'), null, 'wrong length');
  t.is(findHotp(KEY20, '7552240', 0, 10, 6, 'sha1'), null, 'wrong length');
  t.is(findHotp(KEY20, '84755224', 0, 10, 8, 'sha1'), 0);
});

test('findTotp window and replay floor', (t) => {
  const now = 1111111111_000; // step 37037037
  const step = totpStep(now, 30);
  t.is(step, 37037037);
  const at = (s: number) => hotpValue(KEY20, s, 6, 'sha1');
  t.is(findTotp(KEY20, at(step), now, 30, 1, 6, 'sha1', 0), step);
  t.is(findTotp(KEY20, at(step - 1), now, 30, 1, 6, 'sha1', 0), step - 1);
  t.is(findTotp(KEY20, at(step + 1), now, 30, 1, 6, 'sha1', 0), step + 1);
  t.is(findTotp(KEY20, at(step - 2), now, 30, 1, 6, 'sha1', 0), null, 'outside the window');
  t.is(findTotp(KEY20, at(step + 2), now, 30, 1, 6, 'sha1', 0), null, 'outside the window');
  t.is(findTotp(KEY20, at(step - 2), now, 30, 2, 6, 'sha1', 0), step - 2);
  t.is(findTotp(KEY20, at(step - 1), now, 30, 0, 6, 'sha1', 0), null, 'window 0: current step only');
  // replay floor: the token's counter is the next step that may be accepted
  t.is(findTotp(KEY20, at(step), now, 30, 1, 6, 'sha1', step + 1), null, 'already used');
  t.is(findTotp(KEY20, at(step - 1), now, 30, 1, 6, 'sha1', step), null, 'older than the last accepted');
  t.is(findTotp(KEY20, at(step + 1), now, 30, 1, 6, 'sha1', step + 1), step + 1);
  t.is(findTotp(KEY20, at(step), now, 30, 1, 6, 'sha1', step + 5), null, 'floor beyond the window');
  // 60 s steps
  const step60 = totpStep(now, 60);
  t.is(findTotp(KEY20, at(step60), now, 60, 0, 6, 'sha1', 0), step60);
  t.is(findTotp(KEY20, 'abcdef', now, 30, 1, 6, 'sha1', 0), null);
});

test('findTotp at the edge of a step', (t) => {
  const boundary = 30 * 1000 * 50_000_000; // start of step 50000000
  const prev = hotpValue(KEY20, 49_999_999, 6, 'sha1');
  t.is(findTotp(KEY20, prev, boundary, 30, 0, 6, 'sha1', 0), null);
  t.is(findTotp(KEY20, prev, boundary - 1, 30, 0, 6, 'sha1', 0), 49_999_999);
});
