import { homedir, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { loadConfig, type LoadedConfig } from '@pit/daemon';
import type { Output } from './output.js';

/** What a command needs from its environment (injected so tests can run commands in-process). */
export interface CliEnvironment {
  output: Output;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** The global options of `pit`. */
export interface GlobalOptions {
  config?: string;
  cellsRoot?: string;
}

/** Everything a command may use, resolved lazily (a command that needs no config loads none). */
export interface CommandContext {
  environment: CliEnvironment;
  output: Output;
  globals: GlobalOptions;
  /** Who is acting (recorded as `created_by`, `by`). */
  actor: string;
  /** The loaded config (`--config`, PIT_CONFIG, ./pit.toml, ~/.config/pit/pit.toml, /etc/pit/pit.toml, else the embedded default). */
  config(): Promise<LoadedConfig>;
  /** `--cells-root`, else the config's `cells.root`. */
  cellsRoot(): Promise<string>;
}

export function createContext(
  environment: CliEnvironment,
  globals: () => GlobalOptions,
): CommandContext {
  let loaded: Promise<LoadedConfig> | undefined;
  const home = environment.env.HOME || homedir();
  const context: CommandContext = {
    environment,
    output: environment.output,
    get globals() {
      return globals();
    },
    actor: environment.env.USER || safeUser(),
    config: () =>
      (loaded ??= loadConfig({
        ...(globals().config ? { flag: globals().config } : {}),
        env: environment.env,
        cwd: environment.cwd,
        home,
      })),
    cellsRoot: async () => {
      const explicit = globals().cellsRoot;
      return explicit
        ? resolve(environment.cwd, explicit)
        : (await context.config()).config.cells.root;
    },
  };
  return context;
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
