#!/usr/bin/env node
// Process wiring of `pit`: argv, environment and exit code. Everything else is in runCli.
import { runCli } from './main.js';
import { processOutput } from './output.js';

process.exitCode = await runCli(process.argv.slice(2), {
  output: processOutput,
  env: process.env,
  cwd: process.cwd(),
});
