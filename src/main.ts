#!/usr/bin/env node
// The path Galaxy spawns (lib/galaxy/web/proxy/js/lib/main.js): run the CLI.
import { runCli } from './cli/run.js';

await runCli(process.argv);
