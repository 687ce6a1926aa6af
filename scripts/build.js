#!/usr/bin/env node
// `npm run build` (and, with --if-possible, the `prepare` script that `npm install` / `npm ci` run): compiles what
// ships — core/, server/, tokens/, policies/, cli/ (tsconfig.build.json; not tests/ or bench/) — into a fresh build/.
// With --if-possible a missing TypeScript compiler (an install with --omit=dev) skips the build with a note.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
let tsc;
try {
  tsc = path.join(path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
} catch {
  const msg =
    'pushgate: the TypeScript compiler is not installed (dev dependencies omitted?), so build/ was not made; '
    + 'run `npm run build` where the dev dependencies are installed and ship build/ with the code';
  process.stderr.write(msg + '\n');
  process.exit(process.argv.includes('--if-possible') ? 0 : 1);
}
process.stderr.write('pushgate: compiling the TypeScript sources into build/ (tsc -p tsconfig.build.json) …\n');
fs.rmSync(new URL('../build', import.meta.url), { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
process.stderr.write('pushgate: build/ is ready (`npm start`, `npx pushgate …`)\n');
