#!/usr/bin/env node
// npm/npx entry point: the CLI itself lives in lib/main.js, the path Galaxy spawns.
import '../lib/main.js';
