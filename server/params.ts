/**
 * Request parameters: query, urlencoded form, multipart form, JSON body (also a JSON body under another content
 * type) merged into one read-only map of strings — the query wins over the form, JSON over both; a body that is
 * neither form nor JSON is ignored. eduMFA's second-unquote rule (protocol.md §6.1):
 * query and form values are percent-decoded a second time unless the User-Agent's product token is one of the
 * clients that encode only once; JSON values never are. `state` is an alias of `transaction_id`.
 */
import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Busboy from 'busboy';
import { ParameterError, PayloadTooLargeError, missingParameter } from '../core/errors.ts';
import { checkLength } from './store/limits.ts';

export { checkLength };

/** At most this many parameters per request (query, form and JSON together; multipart's `fields` limit too). */
export const MAX_PARAMS = 200;
/** JSON bodies nest at most this deep (the top-level object is depth 1). eduMFA's parameters are flat. */
export const MAX_JSON_DEPTH = 20;

const SINGLE_DECODE_CLIENTS = new Set(['eduMFA-LDAP-Proxy', 'simpleSAMLphp', 'eduMFA-cp']);

export interface Params {
  get(name: string): string | undefined;
  /** Present (possibly empty) or a 400 `Missing parameter: '<name>'`. */
  require(name: string): string;
  /** Present and non-empty or a 400. */
  requireNonEmpty(name: string): string;
  has(name: string): boolean;
  /** Raw JSON value when the body was JSON (numbers, booleans keep their type). */
  raw(name: string): unknown;
  all(): Readonly<Record<string, string>>;
  /** hex SHA-256 of the raw body when the parser was asked to keep it (signed requests), else null. */
  bodySha256(): string | null;
}

/** Python-like lenient unquote: valid %XX UTF-8 sequences are decoded, anything else is kept as is. */
export function lenientUnquote(s: string): string {
  if (!s.includes('%')) return s;
  return s.replace(/(%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      const bytes = Buffer.from(
        run
          .split('%')
          .slice(1)
          .map((h) => parseInt(h, 16)),
      );
      return bytes.toString('utf8');
    }
  });
}

/** eduMFA's rule: no User-Agent → twice; a product token that is not one of the single-encoding clients → twice. */
export function decodesTwice(userAgent: string | undefined): boolean {
  if (!userAgent) return true;
  const m = /^[A-Za-z0-9_-]+/.exec(userAgent);
  return m !== null && !SINGLE_DECODE_CLIENTS.has(m[0]);
}

/**
 * The merged parameters of one request (prototype methods: no closures per request; a Map, not a frozen object
 * literal, so that parameter sets of different shapes do not each make a hidden class).
 */
class RequestParams implements Params {
  private readonly map: ReadonlyMap<string, string>;
  private readonly json: Record<string, unknown> | null;
  private readonly digest: string | null;
  constructor(values: Record<string, string>, rawJson: Record<string, unknown> | null, digest: string | null = null) {
    this.map = new Map(Object.entries(values));
    this.json = rawJson;
    this.digest = digest;
  }
  bodySha256(): string | null {
    return this.digest;
  }
  get(name: string): string | undefined {
    const v = this.map.get(name);
    if (v !== undefined) return v;
    if (name === 'transaction_id') return this.map.get('state');
    return undefined;
  }
  has(name: string): boolean {
    return this.get(name) !== undefined;
  }
  require(name: string): string {
    const v = this.get(name);
    if (v === undefined) throw missingParameter(name);
    return v;
  }
  requireNonEmpty(name: string): string {
    const v = this.get(name);
    if (v === undefined || v === '') throw missingParameter(name);
    return v;
  }
  raw(name: string): unknown {
    return this.json && Object.hasOwn(this.json, name) ? this.json[name] : this.get(name);
  }
  all(): Readonly<Record<string, string>> {
    return Object.freeze(Object.fromEntries(this.map));
  }
}

export function makeParams(
  values: Record<string, string>,
  rawJson: Record<string, unknown> | null = null,
  bodySha256: string | null = null,
): Params {
  return new RequestParams(values, rawJson, bodySha256);
}

/**
 * The deepest nesting of `{`/`[` in a JSON text, counted without recursion (strings skipped). Stops counting past
 * `limit`. Run before JSON.parse, so that nothing recursive ever sees a hostile document.
 */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** Every parameter against PARAM_LIMITS (the app checks this right after parsing, so the audit row can name them). */
export function checkParamLimits(params: Params): void {
  for (const [k, v] of Object.entries(params.all())) checkLength(k, v);
}

/**
 * `user`, `realm` and `serial` as eduMFA reads them: surrounding whitespace removed (eduMFA's split_user strips
 * the user name); an empty result is an absent parameter. The one reader of these identifiers for every route.
 */
export function identifierParam(params: Pick<Params, 'get'>, name: 'user' | 'realm' | 'serial'): string | undefined {
  const v = params.get(name)?.trim();
  return v ? v : undefined;
}

function jsonToString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/**
 * The whole body, at most `limit` bytes. Plain listeners, removed at the end (an async iterator over the request
 * would leave its end-of-stream listeners on it for as long as the request lives — a push wait holds it).
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(new PayloadTooLargeError(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: Error | null) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      req.pause(); // the rest is not read; the 413 closes the connection
      finish(new PayloadTooLargeError(limit));
    };
    const onEnd = () => finish(null);
    const onError = (err: Error) => finish(new ParameterError(`Request body failed: ${err.message}`));
    const onClose = () => {
      if (!req.complete) finish(new ParameterError('The client went away before the request body was complete.'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function parseMultipart(req: IncomingMessage, limit: number): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const out: Record<string, string> = {};
    let bb: ReturnType<typeof Busboy>;
    try {
      bb = Busboy({ headers: req.headers, limits: { fieldSize: limit, files: 0, fields: MAX_PARAMS } });
    } catch (err) {
      reject(new ParameterError(`Invalid multipart body: ${(err as Error).message}`));
      return;
    }
    let total = 0;
    bb.on('field', (name: string | undefined, value, info) => {
      // A part without Content-Disposition or without a name has no parameter name (busboy passes undefined): ignored.
      total += value.length + (name?.length ?? 0);
      if (name === undefined) return;
      if (info.valueTruncated || total > limit) {
        reject(new PayloadTooLargeError(limit));
        return;
      }
      out[name.endsWith('[]') ? name.slice(0, -2) : name] = value;
    });
    bb.on('filesLimit', () => reject(new ParameterError('File uploads are not accepted.')));
    bb.on('fieldsLimit', () => reject(tooManyParams()));
    bb.on('error', (err) => reject(new ParameterError(`Invalid multipart body: ${(err as Error).message}`)));
    bb.on('close', () => resolve(out));
    req.on('error', (err) => reject(new ParameterError(`Request body failed: ${err.message}`)));
    req.pipe(bb);
  });
}

const tooManyParams = () => new ParameterError(`Too many parameters (at most ${MAX_PARAMS}).`);

/**
 * Parses one request. Throws ParameterError (400) for a broken body, PayloadTooLargeError (413) past `limit`.
 * `hashBody`: keep the hex SHA-256 of the raw body (a signed request's signature covers it; multipart is not kept).
 */
export async function parseRequestParams(req: IncomingMessage, query: URLSearchParams, limit: number, hashBody = false): Promise<Params> {
  let digest: string | null = hashBody ? EMPTY_SHA256 : null;
  const twice = decodesTwice(req.headers['user-agent']);
  const values: Record<string, string> = {};
  let count = 0;
  const counted = () => {
    if (++count > MAX_PARAMS) throw tooManyParams();
  };
  for (const [k, v] of query) {
    counted();
    values[k] = twice ? lenientUnquote(v) : v;
  }
  let rawJson: Record<string, unknown> | null = null;
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    const type = String(req.headers['content-type'] ?? '').toLowerCase();
    if (type.startsWith('multipart/form-data')) {
      digest = null;
      for (const [k, v] of Object.entries(await parseMultipart(req, limit))) {
        counted();
        if (!(k in values)) values[k] = twice ? lenientUnquote(v) : v;
      }
    } else {
      const body = await readBody(req, limit);
      if (hashBody) digest = crypto.createHash('sha256').update(body).digest('hex');
      const text = body.toString('utf8');
      // eduMFA reads a body under any non-form content type (none, text/plain, …) as JSON when it is JSON.
      const isForm = type.startsWith('application/x-www-form-urlencoded');
      const looksJson = type.includes('json') || (!isForm && /^\s*[{[]/.test(text));
      if (looksJson && text.trim() !== '') {
        if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH)
          throw new ParameterError(`The JSON body nests deeper than ${MAX_JSON_DEPTH} levels.`);
        let doc: unknown;
        try {
          doc = JSON.parse(text);
        } catch {
          throw new ParameterError('Invalid JSON in the request body.');
        }
        if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ParameterError('The JSON body must be an object.');
        rawJson = doc as Record<string, unknown>;
        for (const [k, v] of Object.entries(rawJson)) {
          counted();
          values[k] = jsonToString(v);
        }
      } else if (isForm && text !== '') {
        // The query wins over the form for a key in both (as eduMFA's request.values); JSON overrides both.
        for (const [k, v] of new URLSearchParams(text)) {
          counted();
          if (!(k in values)) values[k] = twice ? lenientUnquote(v) : v;
        }
      }
    }
  }
  for (const [k, v] of Object.entries(values)) {
    if (v.includes('\u0000')) throw new ParameterError(`Invalid parameter '${k}'.`);
  }
  return makeParams(values, rawJson, digest);
}

const EMPTY_SHA256 = crypto.createHash('sha256').update('').digest('hex');
