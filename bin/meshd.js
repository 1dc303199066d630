#!/usr/bin/env -S node --initial-old-space-size=128
// The meshd command. The package ships TypeScript sources and runs them through
// tsx (a runtime dependency), so there is no build step between a clone and a
// working `npx meshd`; see README "Why no build step".
//
// --initial-old-space-size=128: a broker under load keeps every request in
// flight alive across many young-generation collections; with V8's small
// default old space that meant a full mark-compact every 30-80 ms. Measured
// with npm run bench (K=64, node suite): broker CPU per request ~90 -> ~35 us,
// throughput ~8k -> ~13k req/s. The flag reserves nothing up front. It cannot
// be set from NODE_OPTIONS or at run time, hence the shebang (env -S).
import { register } from 'tsx/esm/api';

register();
await import('./meshd.ts');
