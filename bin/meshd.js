#!/usr/bin/env node
// The meshd command. The package ships TypeScript sources and runs them through
// tsx (a runtime dependency), so there is no build step between a clone and a
// working `npx meshd`; see README "Why no build step".
import { register } from 'tsx/esm/api';

register();
await import('./meshd.ts');
