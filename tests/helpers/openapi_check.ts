/**
 * Checks real responses against the OpenAPI document (server/openapi.ts) with ajv (JSON Schema 2020-12, as OpenAPI
 * 3.1 uses it): the operation for the request's method and path, the response for its status, every documented
 * header, and the body against the schema of its media type. Anything the document does not describe — an
 * undocumented path, method, status or content type, a field the schema does not allow — is an error.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import ajvFormats from 'ajv-formats';
import type { ValidateFunction } from 'ajv';

// ajv-formats is CommonJS (`exports.default = formatsPlugin`): from ESM its default import is module.exports.
const addFormats = ajvFormats.default;

type Obj = Record<string, any>;
const DOC_ID = 'urn:pushgate:openapi';
/** The top-level OpenAPI fields: known to ajv as keywords without validation, so the document can be its own schema resource. */
const OPENAPI_KEYWORDS = [
  'openapi',
  'info',
  'servers',
  'paths',
  'components',
  'security',
  'tags',
  'webhooks',
  'jsonSchemaDialect',
  'externalDocs',
];

/** What a check needs of a response: fetch's Headers or node:http's header object. */
export interface CheckedReply {
  status: number;
  headers: Headers | Record<string, string | string[] | undefined>;
  text: string;
}

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

export interface OpenApiChecker {
  readonly doc: Obj;
  /** The path template of the document that a concrete path matches (exact paths before templated ones), or null. */
  template(path: string): string | null;
  /** The problems of one response to `method path` (empty: described by the document). Records it as exercised. */
  check(method: string, path: string, reply: CheckedReply): string[];
  /** `METHOD template status` of every checked response. */
  readonly exercised: Set<string>;
  /** Compiles every schema of the document in strict mode (unknown keywords or formats, broken $refs throw). */
  compileAll(): number;
}

export function openApiChecker(doc: Obj): OpenApiChecker {
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
  addFormats(ajv);
  ajv.addVocabulary(OPENAPI_KEYWORDS);
  ajv.addSchema({ $id: DOC_ID, ...doc });
  const compiled = new Map<string, ValidateFunction>();
  const validatorAt = (pointer: string): ValidateFunction => {
    let v = compiled.get(pointer);
    if (!v) {
      v = ajv.compile({ $ref: `${DOC_ID}#${pointer}` });
      compiled.set(pointer, v);
    }
    return v;
  };
  /** Follows an OpenAPI `$ref` (a response, a header) inside the document; returns the object and its JSON pointer. */
  const deref = (node: Obj, pointer: string): { node: Obj; pointer: string } => {
    let seen = 0;
    while (typeof node.$ref === 'string') {
      if (++seen > 10 || !node.$ref.startsWith('#/')) throw new Error(`unresolvable $ref ${node.$ref}`);
      pointer = node.$ref.slice(1);
      node = pointer
        .split('/')
        .slice(1)
        .reduce((o: any, part) => o?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
      if (!node) throw new Error(`unresolvable $ref ${pointer}`);
    }
    return { node, pointer };
  };
  const templates = Object.keys(doc.paths).map((t) => ({
    t,
    params: (t.match(/\{/g) ?? []).length,
    re: new RegExp(`^${t.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\}/g, '[^/]+')}$`),
  }));
  templates.sort((a, b) => a.params - b.params);
  const exercised = new Set<string>();

  const template = (path: string): string | null => {
    const candidates = [path, path.endsWith('/') ? path.slice(0, -1) : `${path}/`];
    for (const c of candidates) for (const { t, re } of templates) if (re.test(c)) return t;
    return null;
  };

  const header = (reply: CheckedReply, name: string): string | undefined => {
    if (reply.headers instanceof Headers) return reply.headers.get(name) ?? undefined;
    const v = reply.headers[name.toLowerCase()];
    return Array.isArray(v) ? v.join(', ') : v;
  };

  const check = (method: string, rawPath: string, reply: CheckedReply): string[] => {
    const path = rawPath.split('?')[0]!;
    const t = template(path);
    if (!t) return [`${method} ${path}: no path of the document matches`];
    const m = method.toLowerCase();
    const op = doc.paths[t][m];
    if (!op) return [`${method} ${t}: the document has no ${method} operation`];
    const opPointer = `/paths/${escapePointer(t)}/${m}`;
    const status = String(reply.status);
    if (!op.responses[status]) return [`${method} ${t}: status ${status} is not described (${reply.text.slice(0, 200)})`];
    exercised.add(`${method.toUpperCase()} ${t} ${status}`);
    const { node: response, pointer } = deref(op.responses[status], `${opPointer}/responses/${status}`);
    const problems: string[] = [];
    const where = `${method} ${t} ${status}`;
    for (const [name, raw] of Object.entries((response.headers ?? {}) as Obj)) {
      const { node: h, pointer: hp } = deref(raw, `${pointer}/headers/${escapePointer(name)}`);
      const value = header(reply, name);
      if (value === undefined) {
        if (h.required) problems.push(`${where}: header ${name} is missing`);
        continue;
      }
      const v = validatorAt(`${hp}/schema`);
      if (!v(value)) problems.push(`${where}: header ${name}=${value}: ${ajv.errorsText(v.errors)}`);
    }
    const contentType = header(reply, 'content-type');
    if (reply.text === '' && contentType === undefined) {
      if (response.content && !response['x-body-optional']) problems.push(`${where}: empty body, but the document describes one`);
      return problems;
    }
    if (!response.content) return [...problems, `${where}: a body (${contentType}) where the document describes none`];
    const essence = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
    if (!response.content[essence]) return [...problems, `${where}: content type ${contentType} is not described`];
    const schemaPointer = `${pointer}/content/${escapePointer(essence)}/schema`;
    let body: unknown = reply.text;
    if (essence.endsWith('json')) {
      try {
        body = JSON.parse(reply.text);
      } catch {
        return [...problems, `${where}: the body is not JSON: ${reply.text.slice(0, 200)}`];
      }
    }
    const v = validatorAt(schemaPointer);
    if (!v(body)) problems.push(`${where}: ${ajv.errorsText(v.errors, { separator: '; ' })} — body ${reply.text.slice(0, 500)}`);
    return problems;
  };

  const compileAll = (): number => {
    let n = 0;
    for (const name of Object.keys(doc.components?.schemas ?? {})) {
      validatorAt(`/components/schemas/${escapePointer(name)}`);
      n++;
    }
    const walk = (node: unknown, pointer: string) => {
      if (!node || typeof node !== 'object') return;
      for (const [k, v] of Object.entries(node)) {
        const p = `${pointer}/${escapePointer(k)}`;
        if (k === 'schema' && v && typeof v === 'object') {
          validatorAt(p);
          n++;
        } else walk(v, p);
      }
    };
    walk(doc.paths, '/paths');
    walk(doc.components?.responses, '/components/responses');
    walk(doc.components?.headers, '/components/headers');
    return n;
  };

  return { doc, template, check, exercised, compileAll };
}
