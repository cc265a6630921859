#!/usr/bin/env node
// Process wiring of `pit`: argv, environment and exit code. Everything else is in runCli.
import { runCli } from './main.js';
import { processOutput } from './output.js';

// A reader that stops early (`pit status | head`) closes the pipe: stop quietly, as `cat` would,
// instead of dying on an unhandled EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });

process.exitCode = await runCli(process.argv.slice(2), {
  output: processOutput,
  env: process.env,
  cwd: process.cwd(),
});
