/** tokens/push/proof.ts: the codes and options of the push proofs (issue 11). */
import test from 'ava';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { loginCode, loginCodeMatches, matchingCode, presenceChoice, proofData, proofOf } from '../../../tokens/push/proof.ts';

test('matchingCode: two different words of the BIP-39 English list, or four digits', (t) => {
  const words = new Set(wordlist);
  for (let i = 0; i < 200; i++) {
    const [a, b, ...rest] = matchingCode('words').split(' ');
    t.true(words.has(a!) && words.has(b!));
    t.not(a, b);
    t.deepEqual(rest, []);
    t.regex(matchingCode('digits'), /^\d{4}$/);
  }
});

test('loginCode: six digits; compared after trimming, any other value fails', (t) => {
  const code = loginCode();
  t.regex(code, /^\d{6}$/);
  t.true(loginCodeMatches(code, code));
  t.true(loginCodeMatches(code, ` ${code} `));
  t.false(loginCodeMatches(code, ''));
  t.false(loginCodeMatches(code, code.slice(1)));
  t.false(loginCodeMatches(code, `${code}0`));
});

test('presenceChoice: distinct options of the set, the answer among them; small sets give all they have', (t) => {
  for (let i = 0; i < 50; i++) {
    const { options, answer } = presenceChoice('NUMERIC', undefined, 10);
    t.is(options.length, 10);
    t.is(new Set(options).size, 10);
    t.true(options.every((o) => /^\d\d$/.test(o)));
    t.true(options.includes(answer));
  }
  t.deepEqual(presenceChoice('CUSTOM', 'a:b', 5).options.sort(), ['a', 'b']);
  // An option with ',' cannot travel (the app splits there); fewer than two usable options → A–Z.
  const fallback = presenceChoice('CUSTOM', 'x,y:z:z', 5).options;
  t.is(fallback.length, 5);
  t.true(fallback.every((o) => /^[A-Z]$/.test(o)));
  t.deepEqual(presenceChoice('CUSTOM', 'x,y:z:w', 5).options.sort(), ['w', 'z']);
  t.true(presenceChoice('ALPHABETIC', undefined, 3).options.every((o) => /^[A-Z]$/.test(o)));
});

test('proofData / proofOf round-trip; a plain row has no proof', (t) => {
  for (const proof of [
    { kind: 'match', code: 'maple ocean' },
    { kind: 'login_code', code: '123456' },
    { kind: 'presence', options: ['A', 'B', 'C'], answer: 'B' },
  ] as const) {
    t.deepEqual(proofOf({ data: proofData(proof) }), proof);
  }
  t.is(proofOf({ data: {} }), null);
});
