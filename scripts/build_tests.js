#!/usr/bin/env node
// The suite compiled once, for `scripts/ava_ci.sh` (`npm test`, .ci/run): a copy of this checkout's files
// (`git ls-files`: tracked and untracked-but-not-ignored; not node_modules, which is found one directory up) in
// .ci-build/, with every TypeScript file of tsconfig.json (sources, tests, benches) compiled next to its copy by the
// TypeScript compiler (`--noCheck`: `npm run typecheck` checks the types). ava then runs tests/**/*.test.js there
// with plain node.
//
// Why: ava runs each test file in its own process, ~250 file runs per CI run, and `--import=tsx` cost each of them
// ~0.4 s CPU to start plus ~1 s more to load the server's module graph through its hooks (measured: importing
// tests/helpers/test_app.ts took 1.3-1.7 s CPU with tsx, 0.45-0.8 s compiled). The copy keeps every path the tests
// derive from import.meta.url the same as in the checkout (package.json, README.md, config.example.yaml, fixtures, the
// .ts sources that the layer and migration tests read, cli/main.ts for the test that runs it through tsx), so the
// tests do not know which way they run; `npx ava <file>.ts` in the checkout still runs them through tsx.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = path.join(root, '.ci-build');
fs.rmSync(out, { recursive: true, force: true });
const ls = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
if (ls.status !== 0) {
  process.stderr.write(`scripts/build_tests.js: git ls-files failed: ${ls.stderr}\n`);
  process.exit(1);
}
let copied = 0;
for (const rel of ls.stdout.split('\0')) {
  if (!rel || rel.startsWith('.ci-build/')) continue;
  const src = path.join(root, rel);
  if (!fs.existsSync(src)) continue; // deleted in the work tree, not yet in the index
  fs.mkdirSync(path.dirname(path.join(out, rel)), { recursive: true });
  fs.copyFileSync(src, path.join(out, rel));
  copied++;
}
// The copy's ava configuration: the compiled test files, plain node (source maps: stack traces name the .ts lines).
const pkgFile = path.join(out, 'package.json');
const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8'));
const { extensions: _ts, ...ava } = pkg.ava;
pkg.ava = { ...ava, files: ava.files.map((g) => g.replace(/\.ts$/, '.js')), nodeArguments: ['--enable-source-maps'] };
fs.writeFileSync(pkgFile, `${JSON.stringify(pkg, null, 2)}\n`);
const tsc = path.join(path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--noCheck', '--outDir', out], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
process.stderr.write(`scripts/build_tests.js: ${copied} files copied and compiled into .ci-build/\n`);
