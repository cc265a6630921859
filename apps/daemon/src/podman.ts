/**
 * Podman for level-3 (container) agents: the daemon's `containers.conf`, the default busybox
 * image built locally, the `podman run` command line of an agent, and running podman itself.
 * It starts no agent (the executor does) and assumes no registry: images are local.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '@pit/cell-spec';
import { DaemonError } from './errors.js';

/** The image level-3 agents run in when their profile names none: busybox-static, built locally. */
export const DEFAULT_AGENT_IMAGE = 'localhost/pit-busybox:1';

/**
 * The `containers.conf` the daemon hands Podman through `CONTAINERS_CONF` (ENVIRONMENT.md
 * "Isolation"): runc (crun refuses hybrid cgroups), cgroupfs (no systemd), a file events
 * log (no journald), and ulimits within the hard limits of a container host.
 */
export const CONTAINERS_CONF = `# Written by the Pit daemon. See apps/daemon/ISOLATION.md.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`;

/** Options of {@link createPodman}. */
export interface PodmanOptions {
  /** The podman binary. @default 'podman' (looked up in PATH) */
  binary?: string;
  /** Where `containers.conf` is written (`<dir>/containers.conf`). */
  configDir: string;
  /** The environment podman runs with (PATH, HOME, XDG_RUNTIME_DIR, …); CONTAINERS_CONF is added. */
  env: NodeJS.ProcessEnv;
  /** Path of a statically linked busybox for the default image. @default '/bin/busybox' */
  busybox?: string;
}

/** A level-3 container's command line, as built by {@link Podman.runArgv}. */
export interface ContainerSpec {
  /** Container name (unique per agent and cell). */
  name: string;
  /** `rootfs:/dir` for `--rootfs`, else an image reference. @default DEFAULT_AGENT_IMAGE */
  image?: string;
  /** Directories mounted read-write at the same path, over the read-only ones (the cell's workspace and heartbeats). */
  writable: string[];
  /** Paths mounted read-only at the same path (the cell, `readonly_paths`). */
  readonly?: string[];
  /** Working directory in the container. */
  workdir: string;
  /** Names of environment variables passed in (values come from podman's own environment, never the command line). */
  envNames: string[];
  /** @default 'none' */
  network?: 'none' | 'host';
  argv: string[];
}

/** Podman, configured for the daemon. */
export interface Podman {
  binary: string;
  /** The environment to run podman with (includes CONTAINERS_CONF). */
  env: NodeJS.ProcessEnv;
  /**
   * Whether `podman run --init` works (catatonit or tini is installed; known after
   * {@link Podman.prepare}). Without an init the agent is PID 1 of its container and gets
   * SIGTERM only if it handles it.
   */
  readonly init: boolean;
  /** Writes containers.conf and builds the default image when missing. Idempotent. @throws {DaemonError} DAEMON_ISOLATION_UNAVAILABLE */
  prepare(image?: string): Promise<void>;
  /** The argv of `podman run` for an agent (attached: the client exits with the container). */
  runArgv(spec: ContainerSpec): string[];
  /** Runs a podman subcommand; resolves with its exit code and output. */
  run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** `podman rm --force --ignore NAME` (a container left by a crash, before starting its agent again). */
  remove(name: string): Promise<void>;
}

/** Whether a podman binary answers `podman --version`. */
export async function podmanAvailable(
  binary = 'podman',
  env: NodeJS.ProcessEnv = {},
): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
  const result = await runCommand(binary, ['--version'], env).catch((error: Error) => ({
    code: null,
    stdout: '',
    stderr: error.message,
  }));
  if (result.code === 0) return { ok: true, version: result.stdout.trim() };
  return {
    ok: false,
    reason: `${binary} --version failed: ${result.stderr.trim() || `exit ${String(result.code)}`}`,
  };
}

/**
 * Sets up Podman for level-3 agents.
 * @example
 * const podman = createPodman({ configDir: join(stateDir, 'podman'), env: process.env });
 * await podman.prepare();
 */
export function createPodman(options: PodmanOptions): Podman {
  const binary = options.binary ?? 'podman';
  const confPath = join(options.configDir, 'containers.conf');
  const env: NodeJS.ProcessEnv = { ...options.env, CONTAINERS_CONF: confPath };
  const setup: PodmanSetup = {
    binary,
    env,
    configDir: options.configDir,
    confPath,
    busybox: options.busybox ?? '/bin/busybox',
  };
  const prepared = new Map<string, Promise<void>>();
  let initPath: string | undefined;
  const prepareImage = async (image: string) => {
    initPath = await findInitPath();
    await writeContainersConf(setup);
    await ensureImage(setup, image);
  };
  const run = (args: string[]) => runCommand(binary, args, env);

  return {
    binary,
    env,
    get init() {
      return initPath !== undefined;
    },
    prepare(image = DEFAULT_AGENT_IMAGE) {
      let pending = prepared.get(image);
      if (!pending) {
        pending = prepareImage(image);
        prepared.set(image, pending);
        pending.catch(() => prepared.delete(image));
      }
      return pending;
    },
    runArgv: (spec) => runArgvOf(spec, { binary, initPath }),
    run,
    async remove(name) {
      await run(['rm', '--force', '--ignore', '--time', '0', name]);
    },
  };
}

/** How the daemon runs podman, as {@link createPodman} resolved it from its options. */
interface PodmanSetup {
  binary: string;
  /** The caller's environment with CONTAINERS_CONF. */
  env: NodeJS.ProcessEnv;
  configDir: string;
  /** `<configDir>/containers.conf`. */
  confPath: string;
  /** The statically linked busybox the default image is built from. */
  busybox: string;
}

/** Where `podman run --init` finds an init, in the order they are preferred. */
const INIT_PATHS = [
  '/usr/libexec/podman/catatonit',
  '/usr/bin/catatonit',
  '/usr/libexec/catatonit/catatonit',
  '/usr/bin/tini-static',
  '/usr/bin/tini',
];

/** The first of {@link INIT_PATHS} that exists, if any. */
async function findInitPath(): Promise<string | undefined> {
  const found = await Promise.all(
    INIT_PATHS.map((path) =>
      fs.access(path).then(
        () => path,
        () => undefined,
      ),
    ),
  );
  return found.find((path) => path !== undefined);
}

/** Writes {@link CONTAINERS_CONF} unless the file already holds it. */
async function writeContainersConf(setup: PodmanSetup): Promise<void> {
  await fs.mkdir(setup.configDir, { recursive: true });
  const current = await fs.readFile(setup.confPath, 'utf8').catch(() => undefined);
  if (current !== CONTAINERS_CONF)
    await writeFileAtomic(setup.confPath, CONTAINERS_CONF, { mode: 0o644 });
}

/**
 * Checks that podman answers and that `image` can be run: a `rootfs:` directory exists, or the
 * image is in local storage; the default image is built when missing, any other is an error.
 */
async function ensureImage(setup: PodmanSetup, image: string): Promise<void> {
  const available = await podmanAvailable(setup.binary, setup.env);
  if (!available.ok)
    throw new DaemonError(
      'DAEMON_ISOLATION_UNAVAILABLE',
      `isolation level 3: ${available.reason} (see apps/daemon/ISOLATION.md)`,
    );
  if (image.startsWith('rootfs:')) {
    const dir = image.slice('rootfs:'.length);
    const stat = await fs.stat(dir).catch(() => undefined);
    if (!stat?.isDirectory())
      throw new DaemonError(
        'DAEMON_ISOLATION_UNAVAILABLE',
        `isolation level 3: rootfs ${dir} is not a directory`,
      );
    return;
  }
  const exists = await runCommand(setup.binary, ['image', 'exists', image], setup.env);
  if (exists.code === 0) return;
  if (image !== DEFAULT_AGENT_IMAGE) {
    throw new DaemonError(
      'DAEMON_ISOLATION_UNAVAILABLE',
      `isolation level 3: image ${image} is not in local storage (no registry is assumed; podman import or podman build it first)`,
    );
  }
  await buildDefaultImage(setup);
}

/** Builds {@link DEFAULT_AGENT_IMAGE}: a root filesystem of busybox and its applets, imported into podman. */
async function buildDefaultImage(setup: PodmanSetup): Promise<void> {
  const { busybox, env } = setup;
  const list = await runCommand(busybox, ['--list'], env).catch((error: Error) => ({
    code: null,
    stdout: '',
    stderr: error.message,
  }));
  if (list.code !== 0) {
    throw new DaemonError(
      'DAEMON_ISOLATION_UNAVAILABLE',
      `isolation level 3: cannot build ${DEFAULT_AGENT_IMAGE}: ${busybox} --list failed (install busybox-static): ${list.stderr.trim()}`,
    );
  }
  const rootfs = await fs.mkdtemp(join(tmpdir(), 'pit-rootfs-'));
  try {
    await writeBusyboxRootfs({ rootfs, busybox, appletList: list.stdout });
    await importRootfs(setup, rootfs);
  } finally {
    await fs.rm(rootfs, { recursive: true, force: true });
  }
}

/** Fills `rootfs` with busybox, a symlink per applet (`busybox --list`, one a line) and minimal passwd and group files. */
async function writeBusyboxRootfs(options: {
  rootfs: string;
  busybox: string;
  appletList: string;
}): Promise<void> {
  const { rootfs, busybox, appletList } = options;
  for (const dir of ['bin', 'tmp', 'proc', 'dev', 'sys', 'etc', 'run'])
    await fs.mkdir(join(rootfs, dir));
  await fs.copyFile(busybox, join(rootfs, 'bin', 'busybox'));
  await fs.chmod(join(rootfs, 'bin', 'busybox'), 0o755);
  for (const applet of appletList.split('\n').map((line) => line.trim())) {
    if (applet === '' || applet === 'busybox' || applet.includes('/')) continue;
    await fs.symlink('busybox', join(rootfs, 'bin', applet));
  }
  await fs.writeFile(
    join(rootfs, 'etc', 'passwd'),
    'root:x:0:0:root:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/false\n',
  );
  await fs.writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
}

/** Packs `rootfs` into a tar beside it and imports it as {@link DEFAULT_AGENT_IMAGE}; the tar is removed. */
async function importRootfs(setup: PodmanSetup, rootfs: string): Promise<void> {
  const tar = `${rootfs}.tar`;
  const packed = await runCommand('tar', ['-C', rootfs, '-cf', tar, '.'], setup.env);
  if (packed.code !== 0)
    throw new DaemonError(
      'DAEMON_ISOLATION_UNAVAILABLE',
      `isolation level 3: tar failed: ${packed.stderr.trim()}`,
    );
  try {
    const imported = await runCommand(
      setup.binary,
      ['import', '--quiet', tar, DEFAULT_AGENT_IMAGE],
      setup.env,
    );
    if (imported.code !== 0)
      throw new DaemonError(
        'DAEMON_ISOLATION_UNAVAILABLE',
        `isolation level 3: podman import failed: ${imported.stderr.trim()}`,
      );
  } finally {
    await fs.rm(tar, { force: true });
  }
}

/** The argv of `podman run` for `spec`, with `--init` when an init was found. */
function runArgvOf(
  spec: ContainerSpec,
  podman: { binary: string; initPath: string | undefined },
): string[] {
  const image = spec.image ?? DEFAULT_AGENT_IMAGE;
  const args = [
    podman.binary,
    'run',
    '--rm',
    '--name',
    spec.name,
    ...(podman.initPath ? ['--init', '--init-path', podman.initPath] : []),
    '--read-only',
    '--interactive=false',
    '--tty=false',
    '--sig-proxy=true',
    '--network',
    spec.network === 'host' ? 'host' : 'none',
    '--workdir',
    spec.workdir,
    '--label',
    'io.pit.agent=1',
  ];
  // Read-only first (the cell), then the writable directories inside it on top.
  for (const path of spec.readonly ?? []) args.push('--volume', `${path}:${path}:ro`);
  for (const path of spec.writable) args.push('--volume', `${path}:${path}:rw`);
  for (const name of spec.envNames) args.push('--env', name);
  if (image.startsWith('rootfs:')) args.push('--rootfs', image.slice('rootfs:'.length));
  else args.push(image);
  return [...args, ...spec.argv];
}

function runCommand(
  binary: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
