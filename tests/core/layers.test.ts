/**
 * The layering rule (docs/architecture.md §1), checked on the source tree: every import runs downward.
 *
 *   cli → server/routes → server/auth → {tokens, policies, server/store, server/push} → core
 *
 * The other files at the top of server/ (app, deps, main, config, …) are wiring and not ranked here, except that
 * nothing under server/ may reach cli/. Rules are checked on what a module REACHES (its imports, their imports, …),
 * type-only imports included, so a leaf cannot lean on a higher floor through a wiring module (store → deps → auth).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCANNED = ['core', 'tokens', 'policies', 'server', 'cli'];

/** Known exceptions, as `importer -> target` (direct edges, repository-relative), each with the reason. None today. */
const KNOWN_EXCEPTIONS = new Map<string, string>([
  // ['server/store/example.ts -> server/deps.ts', 'why it is tolerated and when it goes'],
]);

type Area = 'core' | 'tokens' | 'policies' | 'server/store' | 'server/push' | 'server/auth' | 'server/routes' | 'server' | 'cli' | 'other';

function areaOf(file: string): Area {
  const [top, sub] = file.split('/');
  if (top === 'core' || top === 'tokens' || top === 'policies' || top === 'cli') return top;
  if (top === 'server') {
    if (sub === 'store' || sub === 'push' || sub === 'auth' || sub === 'routes') return `server/${sub}`;
    return 'server';
  }
  return 'other';
}

/** Which areas a module of `area` must never reach. `core` may reach core only. */
function forbidden(from: Area, to: Area): boolean {
  switch (from) {
    case 'core':
      return to !== 'core';
    case 'tokens':
    case 'policies':
      return to.startsWith('server') || to === 'cli';
    case 'server/store':
    case 'server/push':
      return to === 'server/auth' || to === 'server/routes' || to === 'cli';
    case 'server/auth':
      return to === 'server/routes' || to === 'cli';
    case 'server':
    case 'server/routes':
      return to === 'cli';
    default:
      return false;
  }
}

/** The module specifiers a source imports: static imports and re-exports (type-only too), side-effect and dynamic imports. */
function importSpecifiers(src: string): string[] {
  const out: string[] = [];
  const patterns = [
    /^[ \t]*(?:import|export)\b[^;'"`]*?\bfrom\s*(['"])([^'"]+)\1/gm,
    /^[ \t]*import\s*(['"])([^'"]+)\1/gm,
    /\bimport\s*\(\s*(['"])([^'"]+)\1\s*\)/g,
  ];
  for (const re of patterns) for (const m of src.matchAll(re)) out.push(m[2]!);
  return out;
}

type Graph = Map<string, string[]>;

function walk(dir: string, out: string[]): void {
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) walk(rel, out);
    else if (/\.ts$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(rel);
  }
}

/** The relative imports of every scanned file, resolved to repository-relative paths. */
function sourceGraph(): { graph: Graph; missing: string[] } {
  const files: string[] = [];
  for (const dir of SCANNED) if (fs.existsSync(path.join(ROOT, dir))) walk(dir, files);
  const graph: Graph = new Map();
  const missing: string[] = [];
  for (const file of files) {
    const targets: string[] = [];
    for (const spec of importSpecifiers(fs.readFileSync(path.join(ROOT, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue; // node built-ins and packages
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
      if (!fs.existsSync(path.join(ROOT, target))) missing.push(`${file} imports ${spec}, which does not exist`);
      targets.push(target);
    }
    graph.set(file, targets);
  }
  return { graph, missing };
}

/** Every module that reaches a forbidden area, with the chain of imports that gets there (shortest first found). */
function violations(graph: Graph, exceptions: ReadonlyMap<string, string> = new Map()): string[] {
  const out: string[] = [];
  const edges = (file: string) => (graph.get(file) ?? []).filter((t) => !exceptions.has(`${file} -> ${t}`));
  for (const start of graph.keys()) {
    const from = areaOf(start);
    const prev = new Map<string, string>([[start, '']]);
    const queue = [start];
    while (queue.length > 0) {
      const cur = queue.shift()!;
      for (const next of edges(cur)) {
        if (prev.has(next)) continue;
        prev.set(next, cur);
        if (forbidden(from, areaOf(next))) {
          const chain = [next];
          for (let p = cur; p; p = prev.get(p)!) chain.unshift(p);
          out.push(`${from} must not reach ${areaOf(next)}: ${chain.join(' → ')}`);
          continue; // one report per forbidden module reached; do not walk on from it
        }
        queue.push(next);
      }
    }
  }
  return out;
}

test('every import in core/, tokens/, policies/, server/ and cli/ runs downward', (t) => {
  const { graph, missing } = sourceGraph();
  t.deepEqual(missing, [], 'every relative import resolves to a file');
  t.deepEqual(violations(graph, KNOWN_EXCEPTIONS), []);
});

test('the scan sees the real tree (the parser finds the imports the leaves are known to have)', (t) => {
  const { graph } = sourceGraph();
  t.true(graph.size > 80, `${graph.size} files scanned`);
  t.true([...graph.values()].reduce((n, ts) => n + ts.length, 0) > 200);
  for (const dir of ['core', 'tokens', 'policies', 'server/store', 'server/push', 'server/auth', 'server/routes']) {
    t.true(
      [...graph.keys()].some((f) => f.startsWith(`${dir}/`)),
      `${dir}/ scanned`,
    );
  }
  t.true(graph.get('tokens/types.ts')?.includes('core/clock.ts'), 'tokens/types.ts imports the clock from core/');
  t.true(graph.get('server/routes/validate.ts')?.some((f) => f.startsWith('server/auth/')));
});

test('every known exception is still an import in the tree (a fixed one is taken off the list)', (t) => {
  const { graph } = sourceGraph();
  const stale = [...KNOWN_EXCEPTIONS.keys()].filter((edge) => {
    const [from, to] = edge.split(' -> ');
    return !graph.get(from!)?.includes(to!);
  });
  t.deepEqual(stale, []);
});

test('the checker flags direct and indirect upward imports and accepts downward ones', (t) => {
  const g = (edges: Record<string, string[]>): Graph => new Map(Object.entries(edges));
  t.deepEqual(
    violations(
      g({
        'cli/main.ts': ['server/routes/a.ts', 'server/deps.ts', 'tokens/x.ts', 'core/errors.ts'],
        'server/routes/a.ts': ['server/auth/b.ts', 'server/envelope.ts'],
        'server/auth/b.ts': ['tokens/x.ts', 'policies/p.ts', 'server/store/s.ts', 'server/push/c.ts', 'server/deps.ts'],
        'server/deps.ts': ['server/auth/b.ts', 'server/store/s.ts'],
        'server/store/s.ts': ['core/errors.ts', 'tokens/x.ts', 'server/config.ts'],
        'server/push/c.ts': ['core/push_channel.ts', 'core/clock.ts'],
        'tokens/x.ts': ['core/errors.ts', 'policies/p.ts'],
        'policies/p.ts': ['core/clock.ts'],
        'core/events.ts': ['core/clock.ts'],
      }),
    ),
    [],
  );
  t.deepEqual(violations(g({ 'core/errors.ts': ['server/config.ts'] })), ['core must not reach server: core/errors.ts → server/config.ts']);
  t.deepEqual(violations(g({ 'tokens/x.ts': ['server/params.ts'] })), ['tokens must not reach server: tokens/x.ts → server/params.ts']);
  t.deepEqual(violations(g({ 'policies/p.ts': ['cli/format.ts'] })), ['policies must not reach cli: policies/p.ts → cli/format.ts']);
  t.deepEqual(
    violations(
      g({
        'server/store/cleanup.ts': ['server/deps.ts'],
        'server/deps.ts': ['server/auth/check.ts'],
      }),
    ),
    ['server/store must not reach server/auth: server/store/cleanup.ts → server/deps.ts → server/auth/check.ts'],
  );
  t.deepEqual(violations(g({ 'server/push/c.ts': ['server/routes/r.ts'] })), [
    'server/push must not reach server/routes: server/push/c.ts → server/routes/r.ts',
  ]);
  t.deepEqual(violations(g({ 'server/auth/a.ts': ['server/routes/r.ts'] })), [
    'server/auth must not reach server/routes: server/auth/a.ts → server/routes/r.ts',
  ]);
  t.deepEqual(violations(g({ 'server/main.ts': ['cli/context.ts'] })), ['server must not reach cli: server/main.ts → cli/context.ts']);
  t.deepEqual(
    violations(g({ 'tokens/x.ts': ['server/params.ts'] }), new Map([['tokens/x.ts -> server/params.ts', 'test']])),
    [],
    'a known exception is skipped',
  );
});

test('the import parser reads every form of import', (t) => {
  const src = [
    "import fs from 'node:fs';",
    "import type { A, B } from '../a.ts';",
    'import {',
    '  C,',
    '  type D,',
    '} from "./b.ts";',
    "export { E } from './c.ts';",
    "export type { F } from './d.ts';",
    "export * from './e.ts';",
    "import './side.ts';",
    "const m = await import('../f.ts');",
    "const s = 'from \\'./not-an-import.ts\\'';",
  ].join('\n');
  t.deepEqual(importSpecifiers(src).sort(), ['../a.ts', '../f.ts', './b.ts', './c.ts', './d.ts', './e.ts', './side.ts', 'node:fs'].sort());
});
