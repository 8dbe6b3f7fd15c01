#!/usr/bin/env node
// The gx-it-proxy command (bin/gx-it-proxy.js): the same CLI with gx-it-proxy's defaults.
import { GX_IT_PROXY_FRONT_DOOR } from './cli/program.js';
import { runCli } from './cli/run.js';

await runCli(process.argv, GX_IT_PROXY_FRONT_DOOR);
