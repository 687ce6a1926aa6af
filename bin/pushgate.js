#!/usr/bin/env node
// The `pushgate` command: runs the compiled JavaScript in build/ (made by `npm run build`, which `npm install` and
// `npm ci` run through the `prepare` script). From a checkout without a build it says what to run; the TypeScript
// sources run with `node --import tsx cli/main.ts …` (what the tests do).
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../build/cli/main.js', import.meta.url);
if (!fs.existsSync(entry)) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(`error: pushgate is not built (${fileURLToPath(entry)} is missing). Run \`npm run build\` in ${root}\n`);
  process.exit(1);
}
const { main } = await import(entry.href);
await main();
