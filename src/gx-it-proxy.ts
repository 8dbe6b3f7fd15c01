#!/usr/bin/env node
// The gx-it-proxy command (bin/gx-it-proxy.js): the same CLI with gx-it-proxy's defaults.
import { runCli } from './cli/run.js';

await runCli(process.argv, 'gx-it-proxy');
