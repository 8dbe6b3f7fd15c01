#!/usr/bin/env node
// npm/npx entry point for Interactive Tools: the same CLI as lib/main.js with gx-it-proxy's defaults.
import '../lib/gx-it-proxy.js';
