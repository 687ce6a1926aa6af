/**
 * Request parameters: query, urlencoded form, multipart form, JSON body (also a JSON body under another content
 * type) merged into one read-only map of strings — the query wins over the form, JSON over both; a body that is
 * neither form nor JSON is ignored. eduMFA's second-unquote rule (protocol.md §6.1):
 * query and form values are percent-decoded a second time unless the User-Agent's product token is one of the
 * clients that encode only once; JSON values never are. `state` is an alias of `transaction_id`.
 */
import type { IncomingMessage } from 'node:http';
import Busboy from 'busboy';
import { ParameterError, PayloadTooLargeError, missingParameter } from './errors.ts';

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
}

/** Python-like lenient unquote: valid %XX UTF-8 sequences are decoded, anything else is kept as is. */
export function lenientUnquote(s: string): string {
  if (!s.includes('%')) return s;
  return s.replace(/(%[0-9A-Fa-f]{2})+/g, (run) => {
    try { return decodeURIComponent(run); } catch {
      const bytes = Buffer.from(run.split('%').slice(1).map((h) => parseInt(h, 16)));
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
  constructor(values: Record<string, string>, rawJson: Record<string, unknown> | null) {
    this.map = new Map(Object.entries(values));
    this.json = rawJson;
  }
  get(name: string): string | undefined {
    const v = this.map.get(name);
    if (v !== undefined) return v;
    if (name === 'transaction_id') return this.map.get('state');
    return undefined;
  }
  has(name: string): boolean { return this.get(name) !== undefined; }
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
  raw(name: string): unknown { return this.json && Object.hasOwn(this.json, name) ? this.json[name] : this.get(name); }
  all(): Readonly<Record<string, string>> { return Object.freeze(Object.fromEntries(this.map)); }
}

export function makeParams(values: Record<string, string>, rawJson: Record<string, unknown> | null = null): Params {
  return new RequestParams(values, rawJson);
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
      if (err) reject(err); else resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) { chunks.push(chunk); return; }
      req.pause(); // the rest is not read; the 413 closes the connection
      finish(new PayloadTooLargeError(limit));
    };
    const onEnd = () => finish(null);
    const onError = (err: Error) => finish(new ParameterError(`Request body failed: ${err.message}`));
    const onClose = () => { if (!req.complete) finish(new ParameterError('The client went away before the request body was complete.')); };
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
      bb = Busboy({ headers: req.headers, limits: { fieldSize: limit, files: 0, fields: 200 } });
    } catch (err) {
      reject(new ParameterError(`Invalid multipart body: ${(err as Error).message}`));
      return;
    }
    let total = 0;
    bb.on('field', (name: string | undefined, value, info) => {
      // A part without Content-Disposition or without a name has no parameter name (busboy passes undefined): ignored.
      total += value.length + (name?.length ?? 0);
      if (name === undefined) return;
      if (info.valueTruncated || total > limit) { reject(new PayloadTooLargeError(limit)); return; }
      out[name.endsWith('[]') ? name.slice(0, -2) : name] = value;
    });
    bb.on('filesLimit', () => reject(new ParameterError('File uploads are not accepted.')));
    bb.on('error', (err) => reject(new ParameterError(`Invalid multipart body: ${(err as Error).message}`)));
    bb.on('close', () => resolve(out));
    req.on('error', (err) => reject(new ParameterError(`Request body failed: ${err.message}`)));
    req.pipe(bb);
  });
}

/** Parses one request. Throws ParameterError (400) for a broken body, PayloadTooLargeError (413) past `limit`. */
export async function parseRequestParams(req: IncomingMessage, query: URLSearchParams, limit: number): Promise<Params> {
  const twice = decodesTwice(req.headers['user-agent']);
  const values: Record<string, string> = {};
  for (const [k, v] of query) values[k] = twice ? lenientUnquote(v) : v;
  let rawJson: Record<string, unknown> | null = null;
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    const type = String(req.headers['content-type'] ?? '').toLowerCase();
    if (type.startsWith('multipart/form-data')) {
      for (const [k, v] of Object.entries(await parseMultipart(req, limit))) if (!(k in values)) values[k] = twice ? lenientUnquote(v) : v;
    } else {
      const body = await readBody(req, limit);
      const text = body.toString('utf8');
      // eduMFA reads a body under any non-form content type (none, text/plain, …) as JSON when it is JSON.
      const isForm = type.startsWith('application/x-www-form-urlencoded');
      const looksJson = type.includes('json') || (!isForm && /^\s*[{[]/.test(text));
      if (looksJson && text.trim() !== '') {
        let doc: unknown;
        try { doc = JSON.parse(text); } catch { throw new ParameterError('Invalid JSON in the request body.'); }
        if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ParameterError('The JSON body must be an object.');
        rawJson = doc as Record<string, unknown>;
        for (const [k, v] of Object.entries(rawJson)) values[k] = jsonToString(v);
      } else if (isForm && text !== '') {
        // The query wins over the form for a key in both (as eduMFA's request.values); JSON overrides both.
        for (const [k, v] of new URLSearchParams(text)) if (!(k in values)) values[k] = twice ? lenientUnquote(v) : v;
      }
    }
  }
  for (const [k, v] of Object.entries(values)) {
    if (v.includes('\u0000')) throw new ParameterError(`Invalid parameter '${k}'.`);
  }
  return makeParams(values, rawJson);
}
