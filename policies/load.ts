/**
 * Validation of typed YAML policies into PolicyDef values. Every problem names its exact path
 * (`policies[3].actions.edupush_wait must be an integer >= 0`); nothing throws on bad input.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { actionsOfScope, findAction, scopesOfAction } from './actions.ts';
import { isValidClientEntry, isValidPatternEntry, parseTimeExpression } from './match.ts';
import { didYouMean } from './suggest.ts';
import { SCOPES, type ActionDef, type ActionValue, type PolicyDef, type Scope } from './types.ts';

export interface ParsedPolicies {
  policies: PolicyDef[];
  problems: string[];
}

const FIELDS = ['name', 'scope', 'priority', 'active', 'realm', 'resolver', 'user', 'client', 'time', 'actions'];
const FILTERS = ['realm', 'resolver', 'user', 'client'] as const;
const DURATION_UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, y: 365 * 86_400_000 };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: unknown): v is string | number | boolean => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

function parseInteger(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'string' && /^\s*-?\d+\s*$/u.test(v)) {
    const n = Number(v);
    if (Number.isSafeInteger(n)) return n;
  }
  return undefined;
}

function integerRule(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `must be an integer between ${min} and ${max}`;
  if (min !== undefined) return `must be an integer >= ${min}`;
  if (max !== undefined) return `must be an integer <= ${max}`;
  return 'must be an integer';
}

/** Splits a comma and/or whitespace separated string into its non-empty parts. */
const splitList = (s: string, separators: RegExp): string[] =>
  s
    .split(separators)
    .map((p) => p.trim())
    .filter((p) => p !== '');

/** Validates and normalises one action value; returns the value or a problem text (without the path). */
function coerceAction(action: ActionDef, raw: unknown, path: string, problems: string[]): ActionValue | undefined {
  switch (action.type) {
    case 'bool':
      if (raw === true || raw === 'true') return true;
      if (raw === false || raw === 'false') return false;
      problems.push(`${path} must be true or false`);
      return undefined;
    case 'int': {
      const n = parseInteger(raw);
      if (n === undefined || (action.min !== undefined && n < action.min) || (action.max !== undefined && n > action.max)) {
        problems.push(`${path} ${integerRule(action.min, action.max)}`);
        return undefined;
      }
      return n;
    }
    case 'string':
      if (isScalar(raw)) return String(raw);
      problems.push(`${path} must be a string`);
      return undefined;
    case 'enum': {
      const values = action.values ?? [];
      if ((typeof raw === 'string' || typeof raw === 'number') && values.includes(String(raw))) return String(raw);
      problems.push(`${path} must be one of ${values.join(', ')}`);
      return undefined;
    }
    case 'duration': {
      const m = typeof raw === 'string' ? /^(\d+)([smhdy])$/u.exec(raw.trim()) : null;
      const ms = m ? Number(m[1]) * DURATION_UNITS[m[2]!]! : NaN;
      if (!Number.isSafeInteger(ms)) {
        problems.push(`${path} must be a duration: a number followed by s, m, h, d or y (e.g. 10h)`);
        return undefined;
      }
      return ms;
    }
    case 'list': {
      let entries: unknown[];
      if (typeof raw === 'string') entries = splitList(raw, /[\s,]+/u);
      else if (Array.isArray(raw)) entries = raw;
      else {
        problems.push(`${path} must be a list or a comma/space separated string`);
        return undefined;
      }
      if (entries.length === 0) {
        problems.push(`${path} must not be empty`);
        return undefined;
      }
      const out: string[] = [];
      let ok = true;
      entries.forEach((entry, i) => {
        const text = typeof entry === 'string' || typeof entry === 'number' ? String(entry).trim() : undefined;
        if (text === undefined || text === '') {
          problems.push(`${path}[${i}] must be a non-empty string`);
          ok = false;
        } else if (action.values && !action.values.includes(text)) {
          problems.push(`${path}[${i}] must be one of ${action.values.join(', ')}`);
          ok = false;
        } else if (!out.includes(text)) {
          out.push(text);
        }
      });
      return ok ? Object.freeze(out) : undefined;
    }
  }
}

function parseFilter(field: (typeof FILTERS)[number], raw: unknown, path: string, problems: string[]): string[] {
  if (raw === undefined || raw === null) return [];
  let entries: unknown[];
  if (typeof raw === 'string') entries = splitList(raw, /,/u);
  else if (Array.isArray(raw)) entries = raw;
  else if (typeof raw === 'number') entries = [raw];
  else {
    problems.push(`${path} must be a string or a list of strings`);
    return [];
  }
  const out: string[] = [];
  entries.forEach((entry, i) => {
    const text = typeof entry === 'string' || typeof entry === 'number' ? String(entry).trim() : undefined;
    const at = `${path}[${i}]`;
    if (text === undefined || text === '' || text === '!') {
      problems.push(`${at} must be a non-empty string`);
      return;
    }
    const positive = text.startsWith('!') ? text.slice(1) : text;
    if (field === 'client') {
      if (!isValidClientEntry(text)) {
        problems.push(`${at} must be an IP address or CIDR network (optionally prefixed with !), got '${text}'`);
        return;
      }
    } else if (!isValidPatternEntry(positive)) {
      problems.push(`${at} is not a valid regular expression: '${positive}'`);
      return;
    }
    out.push(text);
  });
  return out;
}

interface Located {
  policy: PolicyDef;
  path: string;
}

function parseEntries(raw: unknown, actions: ReadonlyMap<string, ActionDef>, basePath: string, problems: string[]): Located[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    problems.push(`${basePath} must be a list`);
    return [];
  }
  const out: Located[] = [];
  raw.forEach((entry: unknown, index) => {
    const path = `${basePath}[${index}]`;
    if (!isRecord(entry)) {
      problems.push(`${path} must be a mapping`);
      return;
    }
    const before = problems.length;

    for (const key of Object.keys(entry)) {
      if (!FIELDS.includes(key))
        problems.push(`${path}.${key} is not a known policy field${didYouMean(key, FIELDS)} (known: ${FIELDS.join(', ')})`);
    }

    const name = entry['name'];
    if (typeof name !== 'string' || name.trim() === '') problems.push(`${path}.name must be a non-empty string`);

    const scope = entry['scope'];
    const scopeOk = typeof scope === 'string' && (SCOPES as readonly string[]).includes(scope);
    if (!scopeOk)
      problems.push(`${path}.scope must be one of ${SCOPES.join(', ')}${typeof scope === 'string' ? didYouMean(scope, SCOPES) : ''}`);

    let priority = 1;
    if (entry['priority'] !== undefined) {
      const p = parseInteger(entry['priority']);
      if (p === undefined || p < 1) problems.push(`${path}.priority must be an integer >= 1`);
      else priority = p;
    }

    let active = true;
    if (entry['active'] !== undefined) {
      if (typeof entry['active'] === 'boolean') active = entry['active'];
      else problems.push(`${path}.active must be true or false`);
    }

    const filters = {} as Record<(typeof FILTERS)[number], string[]>;
    for (const field of FILTERS) filters[field] = parseFilter(field, entry[field], `${path}.${field}`, problems);

    let time: string | null = null;
    const rawTime = entry['time'];
    if (rawTime !== undefined && rawTime !== null) {
      if (typeof rawTime !== 'string') problems.push(`${path}.time must be a string like 'Mon-Fri: 9:00-17:30'`);
      else if (rawTime.trim() !== '') {
        try {
          time = parseTimeExpression(rawTime).source;
        } catch (err) {
          problems.push(`${path}.time is invalid: ${(err as Error).message}`);
        }
      }
    }

    const values: Record<string, ActionValue> = {};
    const rawActions = entry['actions'];
    if (!isRecord(rawActions)) {
      problems.push(`${path}.actions must be a mapping of action names to values`);
    } else {
      for (const [actionName, rawValue] of Object.entries(rawActions)) {
        const actionPath = `${path}.actions.${actionName}`;
        if (!scopeOk) continue; // cannot judge actions without a scope; the scope problem is reported
        const action = findAction(actions, scope as Scope, actionName);
        if (!action) {
          const elsewhere = scopesOfAction(actions, actionName);
          problems.push(
            `${actionPath} is not a known action for scope ${scope as string}`
              + (elsewhere.length > 0
                ? ` (it belongs to scope ${elsewhere.join(', ')})`
                : didYouMean(
                    actionName,
                    actionsOfScope(actions, scope as Scope).map((a) => a.name),
                  )),
          );
          continue;
        }
        const value = coerceAction(action, rawValue, actionPath, problems);
        if (value !== undefined) values[actionName] = value;
      }
    }

    if (problems.length > before) return;
    out.push({
      path,
      policy: Object.freeze({
        name: (name as string).trim(),
        scope: scope as Scope,
        priority,
        active,
        realm: Object.freeze(filters.realm),
        resolver: Object.freeze(filters.resolver),
        user: Object.freeze(filters.user),
        client: Object.freeze(filters.client),
        time,
        actions: Object.freeze(values),
      }),
    });
  });
  return out;
}

function checkDuplicates(located: readonly Located[], problems: string[]): PolicyDef[] {
  const seen = new Map<string, string>();
  const out: PolicyDef[] = [];
  for (const { policy, path } of located) {
    const first = seen.get(policy.name);
    if (first !== undefined) {
      problems.push(`${path}.name '${policy.name}' is already used by ${first}`);
      continue;
    }
    seen.set(policy.name, path);
    out.push(policy);
  }
  return out;
}

/**
 * Validates a YAML-parsed list of policy entries. `basePath` prefixes every problem path (usually `policies`).
 * Only entries without problems are returned; the caller decides whether any problem is fatal.
 */
export function parsePolicies(raw: unknown, actions: ReadonlyMap<string, ActionDef>, basePath: string): ParsedPolicies {
  const problems: string[] = [];
  const policies = checkDuplicates(parseEntries(raw, actions, basePath, problems), problems);
  return { policies, problems };
}

/**
 * A YAML syntax error as one line with its place and the offending source line:
 * `file.yaml:3:1: invalid YAML: Flow sequence … must end with a ] — line 3: "c: 3"`.
 */
export function yamlProblem(file: string, err: unknown, text: string): string {
  const e = err as Error & { linePos?: Array<{ line: number; col: number }> };
  const reason = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/u, '');
  const pos = e.linePos?.[0];
  if (!pos) return `${file}: invalid YAML: ${reason}`;
  const source = text.split(/\r?\n/u)[pos.line - 1] ?? '';
  return `${file}:${pos.line}:${pos.col}: invalid YAML: ${reason} — line ${pos.line}: ${JSON.stringify(source)}`;
}

/**
 * Reads policy YAML files, each either a list of entries or a mapping `{ policies: [...] }`. Problems are
 * prefixed with the file path as given (`file.yaml: policies[1].scope …`); names must be unique across files.
 */
export function loadPolicyFiles(paths: readonly string[], actions: ReadonlyMap<string, ActionDef>): ParsedPolicies {
  const problems: string[] = [];
  const located: Located[] = [];
  for (const file of paths) {
    let doc: unknown;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problems.push(`${file}: cannot read: ${(err as Error).message}`);
      continue;
    }
    try {
      doc = parseYaml(text);
    } catch (err) {
      problems.push(yamlProblem(file, err, text));
      continue;
    }
    let list: unknown = doc;
    if (isRecord(doc)) {
      const extra = Object.keys(doc).filter((k) => k !== 'policies');
      for (const key of extra) problems.push(`${file}: ${key} is not a known key (expected a list or a mapping with 'policies')`);
      list = doc['policies'];
    } else if (doc !== null && doc !== undefined && !Array.isArray(doc)) {
      problems.push(`${file}: must be a list of policies or a mapping with 'policies'`);
      continue;
    }
    const fileProblems: string[] = [];
    for (const item of parseEntries(list, actions, 'policies', fileProblems)) {
      located.push({ policy: item.policy, path: `${file}: ${item.path}` });
    }
    for (const p of fileProblems) problems.push(`${file}: ${p}`);
  }
  const policies = checkDuplicates(located, problems);
  return { policies, problems };
}
