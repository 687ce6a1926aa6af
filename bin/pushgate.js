#!/usr/bin/env node
// The `pushgate` command: runs the TypeScript sources through tsx, so `npx pushgate …` works without a build.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
await main();
