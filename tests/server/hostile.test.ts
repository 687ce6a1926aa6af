/**
 * The hostile-input suite (issue 9, item 8): property-based requests (fast-check) to every endpoint — random and
 * boundary values, arrays and wrong types, huge and deep bodies, invalid UTF-8 and percent sequences, NUL bytes,
 * every content type, header oddities — sent byte for byte over a raw socket (tests/helpers/raw_http.ts).
 *
 * Every answer must be a 4xx eduMFA envelope or a documented success (2xx; 204/400 without a body from
 * radiuscheck; OPTIONS' Allow list; /metrics' text), or a documented refusal (429/503 with Retry-After): never a 5xx.
 * Every /validate/* request leaves exactly one audit row; the server answers /healthz afterwards. Only requests
 * that the HTTP parser itself refuses (bytes no HTTP/1.1 request may hold) may answer Node's bare 400 — see the
 * last test.
 *
 * Replay: a failure prints fast-check's `{ seed, path }`; run again with PUSHGATE_HOSTILE_SEED=<seed>
 * (and PUSHGATE_HOSTILE_PATH=<path> to jump to the shrunk case). PUSHGATE_HOSTILE_RUNS scales every property's
 * run count (e.g. 10 for a long hunt); PUSHGATE_HOSTILE_COLLECT=1 runs all cases and logs every failing one, grouped
 * by problem, instead of stopping at the first.
 */
import test from 'ava';
import fc from 'fast-check';
import { TEST_DB } from '../helpers/databases.ts';
import { enrollHotp, hotpAt } from '../helpers/kit.ts';
import { enrollPhone, phoneFor, pushWorld } from '../helpers/push_world.ts';
import { sendRaw, type RawRequest, type RawResponse } from '../helpers/raw_http.ts';
import type { TestWorld } from '../helpers/test_app.ts';

const SCALE = Number(process.env.PUSHGATE_HOSTILE_RUNS ?? 1);
const SEED = process.env.PUSHGATE_HOSTILE_SEED === undefined ? undefined : Number(process.env.PUSHGATE_HOSTILE_SEED);
const PATH = process.env.PUSHGATE_HOSTILE_PATH;
const COLLECT = process.env.PUSHGATE_HOSTILE_COLLECT === '1';
const BODY_LIMIT = 64 * 1024; // server.body_limit_bytes' default, which the test world keeps

// ---------------------------------------------------------------------------------------------------------------
// What a request is made of. Specs are small plain values (so that fast-check prints and shrinks them); the bytes
// are built from them when sent.

/** Text to be encoded for the transport (`t`), or bytes placed on the wire exactly as given (`raw`, latin1). */
type Piece = { t: string } | { raw: string };
/** A JSON value, or raw bytes in place of one (`raw`), or an array/object nested `deep` levels. */
type JsonPiece = { j: unknown } | { raw: string } | { deep: number; open: '[' | '{"a":' };

type Body =
  | { kind: 'none' }
  | { kind: 'form'; pairs: Array<[Piece, Piece]>; type: string | null; filler?: number }
  | { kind: 'json'; pairs: Array<[string, JsonPiece]>; type: string | null; filler?: number }
  | { kind: 'text'; text: string; type: string | null }
  | { kind: 'bytes'; bytes: number[]; type: string | null }
  | {
      kind: 'multipart';
      pairs: Array<[string, string]>;
      odd: 'none' | 'no-boundary' | 'wrong-boundary' | 'file' | 'unterminated' | 'no-disposition';
    };

interface Spec {
  method: string;
  /** Path with `{}` for one path segment, filled with `segment`. */
  path: string;
  segment?: Piece;
  query: Array<[Piece, Piece]>;
  body: Body;
  headers: Array<[string, string]>;
  /** `truncated`: Content-Length promises more than is sent, then the client closes its side. */
  transfer: 'length' | 'chunked' | 'truncated';
}

const PARAM_NAMES = [
  'user',
  'pass',
  'serial',
  'realm',
  'type',
  'transaction_id',
  'state',
  'exception',
  'client',
  'otppin',
  'pin',
  'description',
  'genkey',
  'otpkey',
  'otplen',
  'hashlib',
  'timeStep',
  'username',
  'password',
  'page',
  'pagesize',
  'nonce',
  'signature',
  'timestamp',
  'fbtoken',
  'new_fb_token',
  'pubkey',
  'enrollment_credential',
  'decline',
];
const ODD_NAMES = [
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  'user[]',
  'user[0]',
  'USER',
  ' user',
  '',
  'pass ',
  'a.b',
];
/** Values every input handler should survive. Short ones only: the long class is its own property. */
const BOUNDARY = [
  '',
  ' ',
  '\t',
  '  alice  ',
  ' alice',
  'alice ',
  'ÀLÍCE',
  'Alice',
  'alice\u0301',
  '%',
  '*',
  'a*',
  '%%',
  'a\u0000b',
  '\u0000',
  '\uD800',
  '\uDFFF',
  '\uFEFF',
  '\u202Ealice',
  'alice\r\nX-A: b',
  '\n',
  'null',
  'undefined',
  'true',
  'false',
  '[]',
  '{}',
  '-1',
  '0',
  '1e309',
  'NaN',
  'Infinity',
  '0x10',
  '９',
  '١٢٣٤',
  '../../etc/passwd',
  "' OR '1'='1",
  '${jndi:ldap://x}',
  '<script>',
  '😀',
  '\u{10FFFF}',
  '9'.repeat(30),
  'A'.repeat(30),
];
/** Percent sequences that are not valid UTF-8 once decoded, or not valid percent-encoding at all. */
const PERCENT_JUNK = [
  '%',
  '%%',
  '%2',
  '%zz',
  '%g0',
  '%C3%28',
  '%FF%FE',
  '%ED%A0%80',
  '%00',
  '%2500',
  '%25%00',
  '%C0%AF',
  '%F4%90%80%80',
  '%E2%82',
  '%C3',
  '%252525',
  '%u0041',
  '%0D%0A',
  '+%2B+',
  'a%00b',
  '%EF%BB%BF',
];

const TYPES_FORM = [
  'application/x-www-form-urlencoded',
  'APPLICATION/X-WWW-FORM-URLENCODED',
  'application/x-www-form-urlencoded; charset=latin1',
  null,
  'text/plain',
];
const TYPES_JSON = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/vnd.api+json',
  'text/plain',
  null,
  'application/x-www-form-urlencoded',
  'application/octet-stream',
];
const TYPES_ANY = [
  ...new Set([
    ...TYPES_FORM,
    ...TYPES_JSON,
    'multipart/form-data',
    'multipart/form-data; boundary=',
    'multipart/mixed; boundary=x',
    'image/png',
    ';;;',
    'application/json;',
    '*/*',
  ]),
];

interface Known {
  admin: string;
  pushSerial: string;
  txid: string;
  otp: string;
}

/** Endpoints from server/routes/*.ts, with the methods they serve. `{}` marks a path segment. */
const ENDPOINTS: Array<[string[], string]> = [
  [['GET', 'POST'], '/validate/check'],
  [['GET', 'POST'], '/validate/radiuscheck'],
  [['GET', 'POST'], '/validate/samlcheck'],
  [['GET', 'POST'], '/validate/triggerchallenge'],
  [['GET'], '/validate/polltransaction'],
  [['GET'], '/validate/polltransaction/{}'],
  [['POST'], '/auth'],
  [['POST'], '/token/init'],
  [['GET'], '/token/'],
  [['DELETE'], '/token/{}'],
  [['POST'], '/token/enable'],
  [['POST'], '/token/enable/{}'],
  [['POST'], '/token/disable'],
  [['POST'], '/token/disable/{}'],
  [['POST'], '/token/reset'],
  [['POST'], '/token/reset/{}'],
  [['POST'], '/token/setpin'],
  [['POST'], '/token/setpin/{}'],
  [['POST'], '/token/unblock'],
  [['POST'], '/token/unblock/{}'],
  [['GET', 'POST'], '/ttype/edupush'],
  [['GET', 'POST'], '/ttype/push'],
  [['GET', 'POST'], '/ttype/{}'],
  [['GET'], '/healthz'],
  [['GET'], '/readyz'],
  [['GET'], '/metrics'],
];
const OTHER_PATHS = [
  '/validate/',
  '/validate/check/',
  '/validate/nothing',
  '/token',
  '/token/init/{}',
  '/',
  '/auth/',
  '/ttype/',
  '//validate/check',
  '/validate//check',
  '/VALIDATE/check',
  '/validate/%63heck',
];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];

/** The arbitraries of one world (its admin token, serials and transaction id are among the known values). */
function arbitraries(k: Known, long: boolean) {
  const known = [
    'alice',
    'bob',
    'admin',
    'admin-pw',
    'OATH0001',
    k.pushSerial,
    '1234',
    `1234${k.otp}`,
    k.txid,
    'default',
    'hotp',
    'totp',
    'edupush',
    'push',
    'spass',
    '1',
    'true',
    'True',
    ...(long ? [k.admin] : []),
  ];
  const max = long ? 300 : 30;
  const lengthy = fc
    .tuple(
      fc.constantFrom('a', '9', 'é', '😀', ' ', '%41'),
      fc.oneof(
        fc.constantFrom(31, 32, 33, 40, 41, 60, 61, 64, 65, 120, 121, 255, 256, 1000, 1001, 5000, 40_000),
        fc.integer({ min: 31, max: 60_000 }),
      ),
    )
    .map(([c, n]) => c.repeat(n));
  const text: fc.Arbitrary<string> = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...known) },
    { weight: 2, arbitrary: fc.string({ maxLength: max }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: max }) },
    { weight: 2, arbitrary: fc.constantFrom(...BOUNDARY) },
    { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double()).map(String) },
    ...(long ? [{ weight: 4, arbitrary: lengthy }] : []),
  );
  const piece: fc.Arbitrary<Piece> = fc.oneof(
    { weight: 6, arbitrary: text.map((t) => ({ t })) },
    { weight: 1, arbitrary: fc.constantFrom(...PERCENT_JUNK).map((raw) => ({ raw })) },
  );
  const name: fc.Arbitrary<Piece> = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...PARAM_NAMES).map((t) => ({ t })) },
    { weight: 1, arbitrary: fc.constantFrom(...ODD_NAMES).map((t) => ({ t })) },
    { weight: 1, arbitrary: fc.string({ maxLength: 10 }).map((t) => ({ t })) },
  );
  const pairs = fc.array(fc.tuple(name, piece), { maxLength: 8 });
  const jsonPiece: fc.Arbitrary<JsonPiece> = fc.oneof(
    { weight: 5, arbitrary: text.map((j) => ({ j })) },
    { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((j) => ({ j })) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom('"\\ud800"', '"\\u0000"', '"a\u0000b"', '"\\x41"', '"\xff\xfe"', '1e999', '-0', '"\\"', 'NaN', '01', '"\t"')
        .map((raw) => ({ raw })),
    },
  );
  const jsonPairs = fc.array(fc.tuple(fc.oneof(fc.constantFrom(...PARAM_NAMES, ...ODD_NAMES), fc.string({ maxLength: 10 })), jsonPiece), {
    maxLength: 8,
  });
  const filler = long
    ? fc.option(fc.constantFrom(BODY_LIMIT - 200, BODY_LIMIT - 1, BODY_LIMIT, BODY_LIMIT + 1, 3 * BODY_LIMIT), { nil: undefined, freq: 3 })
    : fc.constant(undefined);
  const body: fc.Arbitrary<Body> = fc.oneof(
    { weight: 2, arbitrary: fc.constant<Body>({ kind: 'none' }) },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('form' as const), pairs, type: fc.constantFrom(...TYPES_FORM), filler }) },
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant('json' as const), pairs: jsonPairs, type: fc.constantFrom(...TYPES_JSON), filler }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('text' as const),
        text: fc.oneof(
          fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
          fc.constantFrom(
            '{',
            '{"user":}',
            '{"user":"alice"}x',
            '\uFEFF{"user":"alice"}',
            ' ',
            '[',
            '{"user":"alice","user":1}',
            '{}',
            '[]',
            '"x"',
            'user=alice&pass=1234',
            '&&&==',
            '=',
            'user',
            '{"__proto__":{"pass":"1234"},"user":"alice"}',
          ),
        ),
        type: fc.constantFrom(...TYPES_ANY),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('bytes' as const),
        bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 300 }),
        type: fc.constantFrom(...TYPES_ANY),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('multipart' as const),
        pairs: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...PARAM_NAMES), fc.string({ maxLength: 8 })), text), { maxLength: 6 }),
        odd: fc.constantFrom('none', 'none', 'none', 'no-boundary', 'wrong-boundary', 'file', 'unterminated', 'no-disposition'),
      }),
    },
  );
  const auth = fc.oneof(
    fc.constant(k.admin),
    fc.constant(`Bearer ${k.admin}`),
    fc.constant(`${k.admin}==`),
    fc.constant(`${k.admin}!!`),
    fc.constant('Bearer'),
    fc.constant('null'),
    fc.string({ unit: 'grapheme-ascii', maxLength: 60 }),
    fc.constant('a.b.c'),
    fc.constant(`${k.admin.split('.').slice(0, 2).join('.')}.`),
  );
  const header = fc.oneof(
    fc.tuple(fc.constant('Authorization'), auth),
    fc.tuple(
      fc.constant('User-Agent'),
      fc.constantFrom(
        'eduMFA-LDAP-Proxy',
        'simpleSAMLphp/2.0',
        'eduMFA-cp/1',
        'privacyIDEA-Keycloak/1',
        'curl/8',
        '',
        '-',
        'eduMFA-LDAP-Proxy/1 (x)',
      ),
    ),
    fc.tuple(fc.constant('X-Forwarded-For'), fc.constantFrom('1.2.3.4', '::1', 'junk', '1.2.3.4, 5.6.7.8', '', '999.1.1.1', '127.0.0.1')),
    fc.tuple(fc.constant('Accept'), fc.constantFrom('*/*', 'text/html', 'application/xml', '')),
    fc.tuple(fc.constant('Content-Encoding'), fc.constantFrom('gzip', 'identity', 'br')),
    fc.tuple(fc.constant('Expect'), fc.constant('100-continue')),
    fc.tuple(fc.constantFrom('X-Odd', 'Cookie', 'Origin', 'Referer'), fc.string({ unit: 'grapheme-ascii', maxLength: long ? 4000 : 40 })),
  );
  const endpoint = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.constantFrom(...ENDPOINTS).chain(([methods, path]) => fc.tuple(fc.constantFrom(...methods), fc.constant(path))),
    },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...METHODS), fc.constantFrom(...ENDPOINTS.map(([, p]) => p), ...OTHER_PATHS)) },
  );
  const spec: fc.Arbitrary<Spec> = fc
    .record({
      ep: endpoint,
      segment: fc.oneof(piece, fc.constantFrom<Piece>({ t: k.txid }, { t: k.pushSerial }, { t: 'OATH0001' }, { t: 'edupush' })),
      query: fc.oneof({ weight: 2, arbitrary: fc.constant<Array<[Piece, Piece]>>([]) }, { weight: 1, arbitrary: pairs }),
      body,
      headers: fc.array(header, { maxLength: 4 }),
      transfer: fc.constantFrom('length', 'length', 'length', 'length', 'chunked', 'truncated'),
    })
    .map(({ ep: [method, path], ...rest }) => ({ method, path, ...rest }));
  return { spec, text, piece, pairs };
}

// ---------------------------------------------------------------------------------------------------------------
// Building the bytes.

/** Percent-encodes the UTF-8 bytes of `s` (a lone surrogate becomes U+FFFD, as any UTF-8 encoder does). */
const pct = (s: string): string =>
  [...Buffer.from(s, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
const wire = (p: Piece): string => ('raw' in p ? p.raw : pct(p.t));
const urlencoded = (pairs: Array<[Piece, Piece]>): string => pairs.map(([n, v]) => `${wire(n)}=${wire(v)}`).join('&');

function jsonText(pairs: Array<[string, JsonPiece]>): Buffer {
  const parts = pairs.map(([k, v]) => {
    const value =
      'j' in v
        ? (JSON.stringify(v.j) ?? 'null')
        : 'raw' in v
          ? v.raw
          : v.open.repeat(v.deep) + '1' + (v.open === '[' ? ']' : '}').repeat(v.deep);
    return Buffer.concat([Buffer.from(`${JSON.stringify(k)}:`, 'utf8'), Buffer.from(value, 'raw' in v ? 'latin1' : 'utf8')]);
  });
  const out: Buffer[] = [Buffer.from('{')];
  parts.forEach((p, i) => {
    if (i) out.push(Buffer.from(','));
    out.push(p);
  });
  out.push(Buffer.from('}'));
  return Buffer.concat(out);
}

function bodyBytes(b: Body): { bytes: Buffer | undefined; type: string | null } {
  switch (b.kind) {
    case 'none':
      return { bytes: undefined, type: null };
    case 'form': {
      const pairs = b.filler ? [...b.pairs, [{ t: 'x_filler' }, { t: '' }] as [Piece, Piece]] : b.pairs;
      let text = urlencoded(pairs);
      if (b.filler) text += 'x'.repeat(Math.max(0, b.filler - text.length));
      return { bytes: Buffer.from(text, 'latin1'), type: b.type };
    }
    case 'json': {
      let bytes = jsonText(b.pairs);
      if (b.filler) bytes = jsonText([...b.pairs, ['x_filler', { j: 'x'.repeat(Math.max(0, b.filler - bytes.length - 14)) }]]);
      return { bytes, type: b.type };
    }
    case 'text':
      return { bytes: Buffer.from(b.text, 'utf8'), type: b.type };
    case 'bytes':
      return { bytes: Buffer.from(b.bytes), type: b.type };
    case 'multipart': {
      const boundary = 'hostileBoundary42';
      const parts = b.pairs.map(([n, v]) =>
        b.odd === 'no-disposition'
          ? `--${boundary}\r\nContent-Type: text/plain\r\n\r\n${v}\r\n`
          : `--${boundary}\r\nContent-Disposition: form-data; name="${n.replace(/["\r\n]/g, '_')}"${b.odd === 'file' ? '; filename="a.txt"' : ''}\r\n\r\n${v}\r\n`,
      );
      const text = parts.join('') + (b.odd === 'unterminated' ? '' : `--${boundary}--\r\n`);
      const type =
        b.odd === 'no-boundary'
          ? 'multipart/form-data'
          : `multipart/form-data; boundary=${b.odd === 'wrong-boundary' ? 'other' : boundary}`;
      return { bytes: Buffer.from(text, 'utf8'), type };
    }
  }
}

function toRaw(s: Spec): RawRequest {
  const path = s.path.replace('{}', s.segment ? wire(s.segment) : 'x');
  const target = s.query.length ? `${path}?${urlencoded(s.query)}` : path;
  const { bytes, type } = bodyBytes(s.body);
  const headers: RawRequest['headers'] = [...s.headers];
  if (type !== null) headers.push(['Content-Type', type]);
  if (bytes && s.transfer === 'chunked') {
    headers.push(['Transfer-Encoding', 'chunked']);
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 7_919) {
      const c = bytes.subarray(i, i + 7_919);
      chunks.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
    }
    chunks.push(Buffer.from('0\r\n\r\n'));
    return { method: s.method, target, headers, body: Buffer.concat(chunks), contentLength: false };
  }
  if (s.transfer === 'truncated') {
    headers.push(['Content-Length', String((bytes?.length ?? 0) + 10)]);
    return { method: s.method, target, headers, body: bytes ?? Buffer.alloc(0), contentLength: false, halfClose: true };
  }
  return { method: s.method, target, headers, body: bytes };
}

// ---------------------------------------------------------------------------------------------------------------
// The invariants.

const ALLOWED = new Set([200, 204, 400, 401, 403, 404, 405, 413, 429, 503]);

/** Problems with one answer (empty: fine). */
function answerProblems(method: string, target: string, res: RawResponse): string[] {
  if (res.noResponse) return ['no HTTP answer'];
  const problems: string[] = [];
  const path = new URL(target, 'http://h').pathname;
  if (!ALLOWED.has(res.status)) problems.push(`status ${res.status}`);
  if ((res.status === 429 || res.status === 503) && !res.headers['retry-after']) problems.push(`${res.status} without Retry-After`);
  if (method === 'HEAD') return problems;
  const text = res.body.toString('utf8');
  if (method === 'OPTIONS' && res.status === 200 && text === '' && res.headers.allow) return problems; // Koa's (and Flask's) automatic OPTIONS
  if (path === '/metrics' && res.status === 200)
    return /^text\/plain/.test(res.headers['content-type'] ?? '') ? problems : [...problems, 'metrics not text/plain'];
  if (path.startsWith('/validate/radiuscheck') && text === '' && (res.status === 204 || res.status === 400)) return problems;
  let env: any;
  try {
    env = JSON.parse(text);
  } catch {
    return [...problems, `not JSON: ${JSON.stringify(text.slice(0, 80))}`];
  }
  if (
    env?.jsonrpc !== '2.0'
    || typeof env?.result?.status !== 'boolean'
    || typeof env?.time !== 'number'
    || typeof env?.version !== 'string'
  ) {
    problems.push(`not an eduMFA envelope: ${text.slice(0, 120)}`);
  } else if (res.status >= 400) {
    const e = env.result.error;
    if (env.result.status !== false || typeof e?.code !== 'number' || typeof e?.message !== 'string')
      problems.push(`error envelope without status false/code/message: ${text.slice(0, 120)}`);
  } else if (env.result.status !== true) {
    problems.push(`2xx with result.status false: ${text.slice(0, 120)}`);
  }
  if (res.status >= 500 && env?.result?.error) problems.push(`${res.status} ${env.result.error.code}: ${env.result.error.message}`);
  return problems;
}

const validateRows = async (w: TestWorld): Promise<number> => {
  const [row] = await w.deps.store.knex('audit').where('action', 'like', '% /validate/%').count({ n: '*' });
  return Number((row as { n: number | string }).n);
};

/** The audit count once it reaches `expected`, polled over event-loop turns (a refused body may be audited after the reply). */
async function settledCount(w: TestWorld, expected: number): Promise<number> {
  let n = await validateRows(w);
  for (let i = 0; i < 50 && n < expected; i++) {
    await new Promise((r) => setImmediate(r));
    n = await validateRows(w);
  }
  return n;
}

interface Runner {
  /** Sends `raw`; returns the problems found (answer, audit). */
  send(raw: RawRequest, opts?: { malformed?: boolean }): Promise<string[]>;
  failures: Array<{ problem: string; spec: unknown }>;
}

function runner(w: TestWorld): Runner {
  let audited: number | null = null;
  const failures: Runner['failures'] = [];
  return {
    failures,
    async send(raw, opts = {}) {
      audited ??= await validateRows(w);
      const res = await sendRaw(w.url, raw);
      // Node's parser answers a request head beyond its 16 KiB limit with a bare 431 (server.maxHeaderSize), and
      // bytes no request may hold with a bare 400: pushgate never sees those requests, so no envelope and no audit.
      const headBytes = raw.target.length + raw.headers.reduce((n, [k, v]) => n + k.length + v.length + 4, 0);
      const cutShort = raw.halfClose === true;
      const parserRefused =
        res.body.length === 0
        && ((res.status === 431 && headBytes > 16_000) || ((opts.malformed === true || cutShort) && res.status === 400));
      const problems = parserRefused ? [] : answerProblems(raw.method, raw.target, res);
      let path = '';
      try {
        path = new URL(raw.target, 'http://h').pathname;
      } catch {
        /* not a URL */
      }
      // A body cut short is refused by the parser (bare 400) and by pushgate, which audits it after that answer.
      if (path.startsWith('/validate/') && (!parserRefused || (cutShort && res.status === 400))) {
        const n = await settledCount(w, audited + 1);
        if (n !== audited + 1) problems.push(`${n - audited} audit rows for a /validate/ request (status ${res.status})`);
        audited = n;
      } else {
        const n = await validateRows(w);
        // A malformed request may still have reached pushgate (a body cut short is refused by the app and audited).
        if (path.startsWith('/validate/') && n > audited + 1) problems.push(`${n - audited} audit rows for one refused /validate/ request`);
        audited = n;
      }
      return problems;
    },
  };
}

/** Runs a property; in COLLECT mode every failing case is recorded and all are reported at the end. */
async function check<T>(
  t: { log(...a: unknown[]): void; fail(m: string): void; pass(): void },
  w: TestWorld,
  arb: fc.Arbitrary<T>,
  runs: number,
  toRequest: (v: T) => { raw: RawRequest; malformed?: boolean },
  examples: T[] = [],
): Promise<void> {
  const r = runner(w);
  const numRuns = Math.max(1, Math.round(runs * SCALE));
  const seed = SEED ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const prop = fc.asyncProperty(arb, async (v) => {
    const { raw, malformed } = toRequest(v);
    const problems = await r.send(raw, { malformed });
    if (problems.length === 0) return true;
    if (COLLECT) {
      for (const problem of problems) r.failures.push({ problem, spec: v });
      return true;
    }
    throw new Error(problems.join('; '));
  });
  try {
    await fc.assert(prop, { numRuns, seed, path: PATH, examples: examples.map((e) => [e] as [T]), endOnFailure: COLLECT });
  } catch (err) {
    t.log(`replay: PUSHGATE_HOSTILE_SEED=${seed} (database ${TEST_DB}); problem: ${String((err as Error).cause ?? '').slice(0, 300)}`);
    throw err;
  }
  const health = await sendRaw(w.url, { method: 'GET', target: '/healthz', headers: [] });
  const healthy = health.status === 200 && JSON.parse(health.body.toString('utf8') || 'null')?.result?.value?.status === 'ok';
  if (r.failures.length) {
    const groups = new Map<string, unknown[]>();
    for (const f of r.failures) {
      const key = f.problem.replace(/\d+ audit rows/, 'N audit rows').slice(0, 160);
      groups.set(key, [...(groups.get(key) ?? []), f.spec]);
    }
    for (const [problem, specs] of groups) t.log(`${specs.length}× ${problem}\n  e.g. ${JSON.stringify(specs[0]).slice(0, 1500)}`);
    t.fail(`${r.failures.length} failing cases (seed ${seed})`);
  } else if (!healthy) {
    t.fail(`/healthz after the run: ${health.status} ${health.body.toString('utf8').slice(0, 200)}`);
  } else {
    t.pass();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The world: an HOTP token and a push phone for alice (PIN 1234), an admin, an open push challenge.

async function hostileWorld(t: Parameters<typeof pushWorld>[0]): Promise<{ w: TestWorld; k: Known }> {
  const w = await pushWorld(t);
  await enrollHotp(w);
  const pushSerial = await enrollPhone(w, phoneFor(w), 'edupush');
  const admin = await w.adminToken();
  const trig = await w.call('POST', '/validate/triggerchallenge', { user: 'alice' }, { headers: { Authorization: admin } });
  const txid = String(trig.body?.detail?.transaction_id ?? '');
  if (!txid) throw new Error(`no challenge: ${trig.text}`);
  return { w, k: { admin, pushSerial, txid, otp: hotpAt(0) } };
}

test.serial(
  'every endpoint: random, boundary and wrongly typed parameters in every transport (values that fit every column)',
  async (t) => {
    const { w, k } = await hostileWorld(t);
    await check(t, w, arbitraries(k, false).spec, 250, (s) => ({ raw: toRaw(s) }));
  },
);

// Values longer than their columns: refused at the edge (400/905) on every database, and a /validate/ request with a
// long path or transaction id still leaves its audit row (cut to the column and marked).
test.serial('every endpoint: values up to and beyond the body limit, beyond every column size', async (t) => {
  const { w, k } = await hostileWorld(t);
  const examples: Spec[] = [
    {
      method: 'POST',
      path: '/token/init',
      query: [],
      body: {
        kind: 'form',
        pairs: [
          [{ t: 'genkey' }, { t: '1' }],
          [{ t: 'user' }, { t: 'u'.repeat(300) }],
        ],
        type: 'application/x-www-form-urlencoded',
      },
      headers: [['Authorization', k.admin]],
      transfer: 'length',
    },
    {
      method: 'POST',
      path: '/token/init',
      query: [],
      body: {
        kind: 'json',
        pairs: [
          ['genkey', { j: 1 }],
          ['description', { j: 'd'.repeat(1000) }],
        ],
        type: 'application/json',
      },
      headers: [['Authorization', k.admin]],
      transfer: 'length',
    },
    {
      method: 'GET',
      path: '/validate/polltransaction/{}',
      segment: { t: '9'.repeat(40) },
      query: [],
      body: { kind: 'none' },
      headers: [],
      transfer: 'length',
    },
  ];
  await check(t, w, arbitraries(k, true).spec, 120, (s) => ({ raw: toRaw(s) }), examples);
});

/** Nesting depths around eduMFA-compatible limits and far beyond (the stack). */
const deepSpec = (depth: number, open: '[' | '{"a":', path: string, kind: 'json' | 'text', type: string | null): Spec => ({
  method: 'POST',
  path,
  query: [],
  headers: [],
  transfer: 'length',
  body:
    kind === 'json'
      ? {
          kind: 'json',
          pairs: [
            ['user', { deep: depth, open }],
            ['pass', { j: '1234' }],
          ],
          type,
        }
      : { kind: 'text', text: open.repeat(depth) + '1' + (open === '[' ? ']' : '}').repeat(depth), type },
});
const deepArb = fc
  .record({
    depth: fc.oneof(
      fc.integer({ min: 1, max: 400 }),
      fc.constantFrom(401, 1000, 5000, 10_000, 20_000),
      fc.integer({ min: 401, max: 30_000 }),
    ),
    open: fc.constantFrom('[' as const, '{"a":' as const),
    path: fc.constantFrom(...ENDPOINTS.filter(([m]) => m.includes('POST')).map(([, p]) => p.replace('{}', 'x'))),
    kind: fc.constantFrom('json' as const, 'text' as const),
    type: fc.constantFrom('application/json', null, 'text/plain'),
  })
  .map(({ depth, open, path, kind, type }) => deepSpec(depth, open, path, kind, type));

// JSON nested beyond the depth limit is a 400/905 before anything recursive runs (it once was a RangeError → 500).
test.serial('deep JSON bodies: nested arrays and objects within and beyond any depth limit', async (t) => {
  const { w } = await hostileWorld(t);
  await check(t, w, deepArb, 60, (s) => ({ raw: toRaw(s) }), [deepSpec(10_000, '[', '/validate/check', 'json', 'application/json')]);
});

test.serial(
  'percent-encoding and UTF-8: invalid sequences in query, form, path and multipart, with and without the second unquote',
  async (t) => {
    const { w, k } = await hostileWorld(t);
    const { piece } = arbitraries(k, false);
    const junk = fc.oneof(
      piece,
      fc.array(fc.constantFrom(...PERCENT_JUNK), { minLength: 1, maxLength: 4 }).map((a) => ({ raw: a.join('') })),
    );
    const arb = fc.record({
      ep: fc.constantFrom(...ENDPOINTS).chain(([methods, path]) => fc.tuple(fc.constantFrom(...methods), fc.constant(path))),
      where: fc.constantFrom('query', 'form', 'segment', 'multipart-bytes'),
      name: fc.constantFrom('user', 'pass', 'serial', 'realm', 'transaction_id', 'type', 'otppin', 'description', 'username', 'signature'),
      value: junk,
      ua: fc.constantFrom(null, 'eduMFA-LDAP-Proxy', 'curl/8'),
      bytes: fc.array(fc.constantFrom(0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xc0, 0xaf, 0x00, 0x41), { minLength: 1, maxLength: 8 }),
    });
    await check(t, w, arb, 150, ({ ep: [method, path], where, name, value, ua, bytes }) => {
      const headers: RawRequest['headers'] = [['Authorization', k.admin]];
      if (ua) headers.push(['User-Agent', ua]);
      const filled = path.replace('{}', where === 'segment' ? wire(value) : 'x');
      if (where === 'query' || method === 'GET' || method === 'DELETE') {
        return { raw: { method, target: `${filled}?${wire({ t: name })}=${wire(value)}&user=alice`, headers } };
      }
      if (where === 'multipart-bytes') {
        const body = Buffer.concat([
          Buffer.from(`--b\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n`),
          Buffer.from(bytes),
          Buffer.from('\r\n--b--\r\n'),
        ]);
        return { raw: { method, target: filled, headers: [...headers, ['Content-Type', 'multipart/form-data; boundary=b']], body } };
      }
      const body = Buffer.concat([
        Buffer.from(`user=alice&${wire({ t: name })}=`, 'latin1'),
        Buffer.from(wire(value), 'latin1'),
        Buffer.from(bytes),
      ]);
      return { raw: { method, target: filled, headers: [...headers, ['Content-Type', 'application/x-www-form-urlencoded']], body } };
    });
  },
);

/**
 * Bytes no HTTP/1.1 request may hold: Node's parser refuses them with its own bare 400 (or 431 for a huge header)
 * before pushgate sees the request, so there is no envelope and no audit row — the invariant is that this is all
 * that happens: no 5xx, and the server keeps answering.
 */
test.serial('malformed HTTP: refused by the parser, the server keeps answering', async (t) => {
  const { w, k } = await hostileWorld(t);
  const odd = fc.constantFrom<Array<[string, string | Buffer]>>(
    [['X-A', Buffer.from('a\u0000b', 'latin1')]],
    [['X-A', Buffer.from('a\rb', 'latin1')]],
    [['Bad Name', 'x']],
    [['X-Huge', 'h'.repeat(20_000)]],
    [
      ['Transfer-Encoding', 'chunked'],
      ['Content-Length', '5'],
    ],
    [
      ['Content-Length', '5'],
      ['Content-Length', '6'],
    ],
    [['Content-Length', '-1']],
    [['Content-Length', 'abc']],
    [['Transfer-Encoding', 'gzip, chunked, x']],
    [
      ['Host', 'a'],
      ['Host', 'b'],
    ],
  );
  const arb = fc.record({
    ep: fc.constantFrom(...ENDPOINTS).chain(([methods, path]) => fc.tuple(fc.constantFrom(...methods), fc.constant(path))),
    how: fc.oneof(
      odd.map((headers) => ({ headers, target: null as string | null, version: undefined as string | undefined })),
      fc.constantFrom('\xff\xfe', ' x', '\u0000', '\t', '"<>', '\x7f').map((s) => ({
        headers: [] as Array<[string, string | Buffer]>,
        target: s as string | null,
        version: undefined as string | undefined,
      })),
      fc.constantFrom('2.0', '1.2', 'x', '0.9').map((version) => ({
        headers: [] as Array<[string, string | Buffer]>,
        target: null as string | null,
        version: version as string | undefined,
      })),
    ),
  });
  await check(t, w, arb, 60, ({ ep: [method, path], how }) => ({
    malformed: true,
    raw: {
      method,
      version: how.version,
      target: `${path.replace('{}', 'x')}?user=alice${how.target ?? ''}`,
      headers: [['Authorization', k.admin], ...how.headers],
      body: method === 'POST' ? Buffer.from('pass=1234') : undefined,
    },
  }));
});

// ---------------------------------------------------------------------------------------------------------------
// Findings of this suite, pinned as plain examples.

test('a multipart part without a name is ignored, not a crash of the server (busboy passes no name)', async (t) => {
  const { w } = await hostileWorld(t);
  for (const part of ['Content-Type: text/plain', 'Content-Disposition: form-data', 'Content-Disposition: form-data; filename=""']) {
    const body = Buffer.from(`--b\r\n${part}\r\n\r\nalice\r\n--b\r\nContent-Disposition: form-data; name="user"\r\n\r\nalice\r\n--b--\r\n`);
    const res = await sendRaw(w.url, {
      method: 'POST',
      target: '/validate/check',
      headers: [['Content-Type', 'multipart/form-data; boundary=b']],
      body,
    });
    t.is(res.status, 400, part);
    t.regex(res.body.toString('utf8'), /Missing parameter: 'pass'|File uploads/, part);
  }
  t.is((await sendRaw(w.url, { method: 'GET', target: '/healthz', headers: [] })).status, 200);
});

test('OPTIONS on a /validate/ endpoint is audited like every /validate/ request', async (t) => {
  const { w } = await hostileWorld(t);
  const before = await validateRows(w);
  const res = await sendRaw(w.url, { method: 'OPTIONS', target: '/validate/check?user=alice', headers: [] });
  t.is(res.status, 200);
  t.is(res.headers.allow, 'HEAD, GET, POST');
  t.is(await validateRows(w), before + 1);
  const [row] = await w.deps.store.knex('audit').orderBy('id', 'desc').limit(1);
  t.like(row, { action: 'OPTIONS /validate/check', username: 'alice', outcome: 'OK' });
  t.falsy(row.success);
});

test('a NUL byte in a path segment (serial, transaction id) is a 400, not a database error (PostgreSQL refuses NUL)', async (t) => {
  const { w, k } = await hostileWorld(t);
  const before = await validateRows(w);
  for (const [method, target] of [
    ['GET', '/validate/polltransaction/%00'],
    ['GET', '/validate/polltransaction/a%00b'],
    ['DELETE', '/token/%00'],
    ['POST', '/token/enable/X%00'],
    ['POST', '/token/setpin/%00?otppin=1'],
    ['GET', '/ttype/edu%00push'],
  ] as const) {
    const res = await sendRaw(w.url, { method, target, headers: [['Authorization', k.admin]] });
    t.is(res.status, 400, target);
    t.like(
      JSON.parse(res.body.toString('utf8')),
      { result: { status: false, error: { code: 905, message: 'ERR905: Invalid path.' } } },
      target,
    );
  }
  t.is(await validateRows(w), before + 2, 'both /validate/ requests are audited');
});

test("a body cut short is audited and logged as an event, not as a stack trace on stderr (Koa's default)", async (t) => {
  const { w } = await hostileWorld(t);
  const before = await validateRows(w);
  const printed: unknown[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => {
    printed.push(a);
  };
  try {
    const res = await sendRaw(w.url, {
      method: 'POST',
      target: '/validate/check',
      headers: [
        ['Content-Type', 'application/x-www-form-urlencoded'],
        ['Content-Length', '100'],
      ],
      body: Buffer.from('user=alice&pass=1'),
      contentLength: false,
      halfClose: true,
    });
    t.is(res.status, 400);
    t.is(await settledCount(w, before + 1), before + 1, 'the refused login is audited');
    for (let i = 0; i < 500 && !w.seen.some((e) => e.name === 'log' && (e.payload as { msg?: string }).msg === 'request stream error'); i++)
      await new Promise((r) => setImmediate(r));
  } finally {
    console.error = orig;
  }
  t.deepEqual(printed, []);
  t.like(w.seen.find((e) => e.name === 'log' && (e.payload as { msg?: string }).msg === 'request stream error')?.payload, {
    level: 'debug',
    error: 'Parse Error',
  });
});
