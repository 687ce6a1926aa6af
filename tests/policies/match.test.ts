import test from 'ava';
import {
  isValidClientEntry,
  matchesClient,
  matchesTime,
  matchesValueList,
  parseIp,
  parseNetwork,
  parseTimeExpression,
} from '../../policies/match.ts';

// 2024-01-01 is a Monday; dates are built in server local time, as the engine reads them.
const at = (day: number, h: number, m = 0, s = 0): Date => new Date(2024, 0, day, h, m, s);

test('value list: empty matches everything', (t) => {
  t.true(matchesValueList([], 'alice'));
  t.true(matchesValueList([], ''));
});

test('value list: exact, star and anchored regex', (t) => {
  t.true(matchesValueList(['alice', 'bob'], 'bob'));
  t.false(matchesValueList(['alice', 'bob'], 'carol'));
  t.true(matchesValueList(['*'], 'anyone'));
  t.true(matchesValueList(['adm.*'], 'admin'));
  t.false(matchesValueList(['adm'], 'admin'), 'regex is anchored at the end');
  t.false(matchesValueList(['min'], 'admin'), 'regex is anchored at the start');
  t.false(matchesValueList(['a|b'], 'ab'), 'alternation stays inside the anchors');
  t.true(matchesValueList(['a|b'], 'b'));
  t.true(matchesValueList(['user[0-9]+'], 'user42'));
  t.false(matchesValueList(['user[0-9]+'], 'user42x'));
});

test('value list: negations', (t) => {
  t.false(matchesValueList(['!bob'], 'bob'));
  t.true(matchesValueList(['!bob'], 'alice'), 'only negative entries: everything else matches');
  t.false(matchesValueList(['*', '!bob'], 'bob'), 'exclusion beats a positive hit');
  t.false(matchesValueList(['!bob', '*'], 'bob'), 'order does not matter');
  t.true(matchesValueList(['*', '!bob'], 'carol'));
  t.false(matchesValueList(['alice', '!bob'], 'carol'), 'a positive entry exists and does not match');
  t.false(matchesValueList(['!svc-.*'], 'svc-backup'));
  t.true(matchesValueList(['!svc-.*'], 'xsvc-backup'));
});

test('value list: an invalid regex only matches itself literally', (t) => {
  t.true(matchesValueList(['a(b'], 'a(b'));
  t.false(matchesValueList(['a(b'], 'ab'));
});

test('parseIp: v4, v6, mapped v4', (t) => {
  t.deepEqual(parseIp('10.0.0.1'), { v: 4, n: 0x0a000001n });
  t.deepEqual(parseIp('::ffff:10.0.0.1'), { v: 4, n: 0x0a000001n });
  t.deepEqual(parseIp('::ffff:a00:1'), { v: 4, n: 0x0a000001n });
  t.deepEqual(parseIp('::1'), { v: 6, n: 1n });
  t.deepEqual(parseIp('2001:db8::'), { v: 6, n: 0x20010db8n << 96n });
  t.deepEqual(parseIp('fe80::1%eth0'), { v: 6, n: (0xfe80n << 112n) | 1n });
  t.deepEqual(parseIp('64:ff9b::192.0.2.33'), { v: 6, n: (0x64n << 112n) | (0xff9bn << 96n) | 0xc0000221n });
  t.is(parseIp('10.0.0.256'), null);
  t.is(parseIp('not-an-ip'), null);
  t.is(parseIp(''), null);
});

test('parseNetwork: prefixes and bounds', (t) => {
  t.deepEqual(parseNetwork('10.1.2.3/8'), { v: 4, base: 0x0a000000n, prefix: 8 });
  t.deepEqual(parseNetwork('::ffff:10.0.0.0/104'), { v: 4, base: 0x0a000000n, prefix: 8 });
  t.deepEqual(parseNetwork('0.0.0.0/0'), { v: 4, base: 0n, prefix: 0 });
  t.is(parseNetwork('10.0.0.0/33'), null);
  t.is(parseNetwork('2001:db8::/129'), null);
  t.is(parseNetwork('10.0.0.0/'), null);
  t.true(isValidClientEntry('!192.168.0.0/16'));
  t.true(isValidClientEntry('2001:db8::/32'));
  t.false(isValidClientEntry('!example.org'));
  t.false(isValidClientEntry('10.0.0.0/8/8'));
});

test('client: empty list matches, also without a client', (t) => {
  t.true(matchesClient([], undefined));
  t.true(matchesClient([], '10.0.0.1'));
});

test('client: non-empty list and unknown client never match', (t) => {
  t.false(matchesClient(['10.0.0.0/8'], undefined));
  t.false(matchesClient(['!10.0.0.0/8'], undefined));
  t.false(matchesClient(['10.0.0.0/8'], 'garbage'));
});

test('client: IPv4 CIDR and exclusions', (t) => {
  const entries = ['10.0.0.0/8', '!10.1.0.0/16', '192.168.1.5'];
  t.true(matchesClient(entries, '10.2.3.4'));
  t.false(matchesClient(entries, '10.1.3.4'));
  t.true(matchesClient(entries, '192.168.1.5'));
  t.false(matchesClient(entries, '192.168.1.6'));
  t.false(matchesClient(entries, '11.0.0.1'));
  t.true(matchesClient(['!10.0.0.0/8'], '11.0.0.1'), 'only exclusions: everything else matches');
  t.false(matchesClient(['!10.0.0.0/8'], '10.9.9.9'));
  t.true(matchesClient(['10.0.0.0/31'], '10.0.0.1'));
  t.false(matchesClient(['10.0.0.0/31'], '10.0.0.2'));
});

test('client: IPv6 CIDR and exclusions', (t) => {
  const entries = ['2001:db8::/32', '!2001:db8:dead::/48'];
  t.true(matchesClient(entries, '2001:db8:1::5'));
  t.true(matchesClient(entries, '2001:DB8:0:0:0:0:0:1'));
  t.false(matchesClient(entries, '2001:db8:dead:beef::1'));
  t.false(matchesClient(entries, '2001:db9::1'));
  t.true(matchesClient(['::1'], '::1'));
  t.true(matchesClient(['::/0'], '2a00::1'));
  t.false(matchesClient(['::/0'], '10.0.0.1'), 'an IPv6 network does not contain IPv4 clients');
  t.false(matchesClient(['0.0.0.0/0'], '2a00::1'), 'an IPv4 network does not contain IPv6 clients');
});

test('client: IPv4-mapped IPv6 is treated as IPv4, both as client and as entry', (t) => {
  t.true(matchesClient(['10.0.0.0/8'], '::ffff:10.0.0.1'));
  t.false(matchesClient(['!10.0.0.0/8'], '::ffff:10.0.0.1'));
  t.true(matchesClient(['::ffff:10.0.0.0/104'], '10.20.30.40'));
  t.true(matchesClient(['::ffff:192.168.1.1'], '192.168.1.1'));
});

test('time: parse structure', (t) => {
  const expr = parseTimeExpression(' Mon-Fri: 9:00-17:30, Sat: 9-12 ');
  t.is(expr.source, 'Mon-Fri: 9:00-17:30, Sat: 9-12');
  t.deepEqual(expr.windows, [
    { days: [1, 2, 3, 4, 5], start: 540, end: 1050 },
    { days: [6], start: 540, end: 720 },
  ]);
  t.deepEqual(parseTimeExpression('fri-mon: 0-24').windows[0]!.days, [5, 6, 0, 1], 'day ranges wrap');
  t.true(Object.isFrozen(expr.windows));
});

test('time: windows are start-inclusive and end-exclusive, in local time', (t) => {
  const expr = parseTimeExpression('Mon-Fri: 9:00-17:30, Sat: 9-12');
  t.false(matchesTime(expr, at(1, 8, 59, 59)));
  t.true(matchesTime(expr, at(1, 9, 0)));
  t.true(matchesTime(expr, at(3, 17, 29, 59)));
  t.false(matchesTime(expr, at(5, 17, 30)));
  t.true(matchesTime(expr, at(6, 11, 59)));
  t.false(matchesTime(expr, at(6, 12, 0)));
  t.false(matchesTime(expr, at(7, 10, 0)), 'Sunday is not listed');
  t.true(matchesTime('Sun: 0:00-24:00', at(7, 23, 59)), 'a string expression is parsed on the fly');
});

test('time: invalid expressions throw with a reason', (t) => {
  t.throws(() => parseTimeExpression(''), { message: /empty/ });
  t.throws(() => parseTimeExpression('Mon-Fri 9-17'), { message: /does not look like/ });
  t.throws(() => parseTimeExpression('Mox: 9-17'), { message: /unknown day 'Mox'/ });
  t.throws(() => parseTimeExpression('Mon: 9-25'), { message: /not a time of day/ });
  t.throws(() => parseTimeExpression('Mon: 9:60-10'), { message: /not a time of day/ });
  t.throws(() => parseTimeExpression('Mon: 24:30-10'), { message: /not a time of day/ });
  t.throws(() => parseTimeExpression('Mon: 17-9'), { message: /end time must be after/ });
  t.throws(() => parseTimeExpression('Mon: 9-17,'), { message: /does not look like/ });
});
