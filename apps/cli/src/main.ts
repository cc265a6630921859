import { PitError } from '@pit/cell-spec';
import { buildProgram, CommanderError, type CliEnvironment } from './program.js';
import { exitCodeFor } from './errors.js';
import { EXIT } from './exit-codes.js';

/**
 * Runs `pit` with `argv` (without node and script) and resolves to its exit code. The one
 * top-level catch: Pit errors print their message; anything unknown prints its stack (exit 70).
 */
export async function runCli(argv: string[], environment: CliEnvironment): Promise<number> {
  const result = { code: EXIT.ok as number };
  const program = buildProgram(environment, result);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return result.code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit 0; every other commander error is a usage error (already printed).
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (PitError.is(error)) {
      environment.output.err(`pit: ${error.message}`);
      return exitCodeFor(error);
    }
    environment.output.err(
      `pit: internal error\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    return EXIT.internal;
  }
}
