import { isAbsolute } from 'node:path';
import { DaemonError } from './errors.js';

/**
 * The level-2 launcher, run by `sh` as PID 1 of a fresh user + mount + pid namespace
 * (`unshare --user --map-root-user --mount --pid --fork`). It builds the agent's view of the
 * machine (ENVIRONMENT.md "Isolation"):
 *
 * 1. `/` is bind-mounted recursively under a new root and every mount in it is remounted
 *    read-only (keeping the flags the kernel locks: nosuid, nodev, noexec, atime).
 * 2. tmpfs over `/tmp` and `/dev/shm` (private scratch), `/root` and `/home` (read-only
 *    once set up), and over every path given with `-h` (other agents' homes).
 * 3. `-r PATH` re-exposes a path read-only (the cell, the agent's own home, `readonly_paths`),
 *    then `-w PATH` binds a path read-write on top (the cell's `workspace/` and
 *    `.lazarus/heartbeats/`): the rest of the cell (`cell.json`, `logs/`, `.lazarus/state.json`,
 *    `checkpoints/`, `bus/`) stays read-only to the agent. The hidden tmpfs are made read-only
 *    last, once the paths re-exposed below them have their mount points.
 * 4. `pivot_root` into the new root, detach the old one, mount a fresh `/proc` (only the
 *    namespace's processes are visible), and allow no cgroup namespace below this user
 *    namespace (`user.max_cgroup_namespaces = 0`): `/sys/fs/cgroup` is read-only, but in a
 *    cgroup namespace of its own the agent could mount a fresh, writable cgroup2 (its files are
 *    owned by the uid the daemon runs as) and move, freeze or kill other groups.
 * 5. Enter a second, nested user + mount namespace and run the agent as its child: in the
 *    nested namespace every mount above is locked, so the agent cannot unmount the tmpfs and
 *    see what it hides.
 *
 * With `-u UID:GID` (a daemon running as root, `[sandbox] uid`/`gid`), the launcher is started
 * in a mount + pid namespace without a user namespace of its own (`unshare --mount --pid
 * --fork`): a user namespace made by root maps its root to the host's root, so the agent would
 * be uid 0 to the file system and read every root-only file the sandbox does not hide
 * (`/etc/shadow`). The launcher builds the same view, checks as UID that the writable paths are
 * writable (a clear error otherwise), then drops to UID:GID with no supplementary groups and no
 * new privileges (`setpriv`) before the nested namespaces: a first user namespace of UID's, in
 * which the cgroup-namespace limit is set to 0 (a limit the agent's own namespace below cannot
 * lift; the launcher must not set it in the host's namespace), and in it the agent's user +
 * mount namespace. The agent is root in its namespace and UID to the host: it can write what
 * UID may (the cell's `workspace/` and `.lazarus/heartbeats/`, handed to UID by the executor)
 * and nothing the daemon keeps for itself. Where the host refuses user namespaces to
 * unprivileged users (probed once per start), the agent runs as the bare UID in the launcher's
 * namespaces instead (a line in its error log says so): it has no capability at all there.
 *
 * The launcher stays PID 1 and waits for the agent: PID 1 of a namespace ignores signals it
 * has no handler for, so a SIGTERM sent to the process group reaches the agent (PID ≥ 2)
 * while the launcher simply waits; when the agent exits, the launcher exits with its status
 * (128+N for a signal) and the kernel kills whatever the agent left in the namespace.
 * `unshare --fork` blocks SIGINT/SIGTERM while it waits for its child, so the process the
 * daemon tracks (the `unshare` it spawned, leader of the process group) exits exactly when
 * the agent has.
 *
 * Arguments: `WORKDIR [-n] [-u UID:GID] [-h PATH]... [-r PATH]... [-w PATH]... -- ARGV...`
 * (`-n`: bring up loopback in a new network namespace; `-u`: run the agent as UID:GID, see above).
 */
export const SANDBOX_LAUNCHER = String.raw`
set -eu
agent_path=${'$'}{PATH-/usr/local/bin:/usr/bin:/bin}
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
unshare_bin=$(command -v unshare)
agent_umask=$(umask)
# Mount points made below are searchable by the agent's uid, whatever the daemon's umask.
umask 022
fail() { echo "pit-sandbox: $*" >&2; exit 125; }
# Remount read-only every mount at or below $1, keeping the flags the kernel locks. One awk
# pass lists them (mount points unescaped, with their lockable flags); a mount point that has
# vanished meanwhile (a host directory removed) is unreachable and skipped.
make_ro() {
  awk -v prefix="$1" '
    function unescape(s) { gsub(/\\040/, " ", s); gsub(/\\011/, "\t", s); gsub(/\\012/, "\n", s); gsub(/\\134/, "\\", s); return s }
    {
      mp = unescape($5)
      if (mp != prefix && index(mp, prefix "/") != 1) next
      n = split($6, opts, ","); keep = ""
      for (i = 1; i <= n; i++) if (opts[i] ~ /^(nosuid|nodev|noexec|relatime|noatime|nodiratime|strictatime)$/) keep = keep "," opts[i]
      print keep "\t" mp
    }' /proc/self/mountinfo > "$stage/mounts"
  while IFS="$tab" read -r keep mp; do
    mount -o "remount,bind,ro$keep" "$mp" 2>/dev/null || mount -o remount,bind,ro "$mp" 2>/dev/null || { [ -e "$mp" ] || continue; fail "cannot make $mp read-only"; }
  done < "$stage/mounts"
}
tab=$(printf '\t')
nl='
'
writable=
workdir=$1; shift
net=0
[ "${'$'}{1-}" = "-n" ] && { net=1; shift; }
user=
if [ "${'$'}{1-}" = "-u" ]; then
  user=$2; shift 2
  uid=${'$'}{user%%:*} gid=${'$'}{user#*:}
  case "$uid" in ''|*[!0-9]*) fail "bad -u $user (expected UID:GID)" ;; esac
  case "$gid" in ''|*[!0-9]*) fail "bad -u $user (expected UID:GID)" ;; esac
  [ "$uid" != 0 ] && [ "$gid" != 0 ] || fail "-u $user: the agent must not run as root"
  setpriv_bin=$(command -v setpriv) || fail "setpriv (util-linux) not found: needed to run the agent as uid $uid"
fi
# A stage to build the new root in; it is unmounted again inside the copy.
stage=
for candidate in /dev/shm /run /mnt /tmp; do
  [ -d "$candidate" ] && { stage=$candidate; break; }
done
[ -n "$stage" ] || fail "no directory to stage the new root in"
mount -t tmpfs -o size=64k,mode=0700 pit-stage "$stage" || fail "cannot mount a tmpfs (user namespaces disabled?)"
root=$stage/pit-root
mkdir "$root"
mount --rbind / "$root"
umount -l "$root$stage"
make_ro "$root"
for dir in /tmp /dev/shm; do
  [ -d "$root$dir" ] && mount -t tmpfs -o mode=1777,size=256m,nosuid,nodev pit-scratch "$root$dir"
done
for dir in /root /home; do
  [ -d "$root$dir" ] && mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev pit-hidden "$root$dir"
done
while [ $# -gt 0 ]; do
  case "$1" in
    -h) if [ -d "$root$2" ]; then mount -t tmpfs -o mode=0755,size=64k,nosuid,nodev pit-hidden "$root$2"; printf '%s\n' "$2" >> "$stage/hidden"; fi; shift 2 ;;
    -r) if [ -d "$2" ]; then mkdir -p "$root$2"; elif [ -e "$2" ]; then mkdir -p "$(dirname "$root$2")"; [ -e "$root$2" ] || : > "$root$2"; else shift 2; continue; fi
        mount --rbind "$2" "$root$2" && make_ro "$root$2"; shift 2 ;;
    -w) [ -d "$2" ] && [ ! -L "$2" ] || fail "writable path $2 is not a directory"
        mkdir -p "$root$2"; mount --rbind "$2" "$root$2"; writable="$writable$2$nl"; shift 2 ;;
    --) shift; break ;;
    *) fail "unknown option $1" ;;
  esac
done
# A per-mount read-only flag (bind remount): an unprivileged user namespace may not remount the
# tmpfs itself. The hidden tmpfs stayed writable until now so that a home below one of them
# could be re-exposed (-r made its mount point).
printf '/root\n/home\n' >> "$stage/hidden"
while IFS= read -r dir; do
  if [ -d "$root$dir" ]; then mount -o remount,bind,ro,nosuid,nodev "$root$dir"; fi
done < "$stage/hidden"
cd "$root"
pivot_root . .
umount -l .
cd /
mount -t proc -o nosuid,nodev,noexec proc /proc
# No cgroup namespace below this one: in its own the agent could mount a writable cgroup2 and
# move, freeze or kill other groups. With -u this is the host's namespace: the limit is set in
# the agent's uid's own namespace below instead.
[ -n "$user" ] || echo 0 > /proc/sys/user/max_cgroup_namespaces || fail "cannot forbid cgroup namespaces"
[ "$net" = 1 ] && { ip link set lo up 2>/dev/null || true; }
cd "$workdir" || fail "cannot enter $workdir"
if [ -n "$user" ]; then
  drop() { "$setpriv_bin" --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs -- "$@"; }
  # What the agent must write, checked as the agent: a directory above it that uid cannot search,
  # or a workspace it does not own, is named here rather than failing inside the agent.
  denied=$(set -f; IFS=$nl; drop /bin/sh -c 'for dir; do [ -w "$dir" ] && [ -x "$dir" ] || { printf %s "$dir"; exit 1; }; done' sh $writable) ||
    fail "uid $uid cannot write ${'$'}{denied:-its writable paths} (it, or a directory above it, is not writable or searchable for $uid:$gid: [sandbox] uid/gid)"
  userns=1
  drop "$unshare_bin" --user --map-root-user -- /bin/true 2>/dev/null || userns=0
fi
PATH=$agent_path; export PATH
umask "$agent_umask"
set +e
if [ -n "$user" ] && [ "$userns" = 0 ]; then
  # The host refuses user namespaces to unprivileged users (AppArmor on Ubuntu 24.04, a sysctl):
  # the agent runs as the bare uid, with no capability in any namespace (it can unmount nothing),
  # and no new privileges (setuid programs are ignored).
  echo "pit-sandbox: user namespaces are refused to uid $uid: the agent runs as uid $uid without one" >&2
  drop "$@" &
elif [ -n "$user" ]; then
  drop "$unshare_bin" --user --map-root-user -- /bin/sh -c 'echo 0 > /proc/sys/user/max_cgroup_namespaces || { echo "pit-sandbox: cannot forbid cgroup namespaces" >&2; exit 125; }; exec "$0" --user --map-root-user --mount -- "$@"' "$unshare_bin" "$@" &
else
  "$unshare_bin" --user --map-root-user --mount -- "$@" &
fi
agent=$!
wait "$agent"
exit $?
`;

/** What {@link sandboxArgv} needs. */
export interface SandboxSpec {
  /** The `unshare` binary (absolute path). */
  unshare: string;
  /** Working directory of the agent inside the sandbox (the cell's `workspace/`). */
  workdir: string;
  /** Directories bound read-write, after the read-only ones (the cell's workspace and heartbeats). */
  writable: string[];
  /** Directories hidden under an empty read-only tmpfs (`[sandbox] home_roots`, other agents' homes). */
  hidden?: string[];
  /** Paths re-exposed read-only, before the writable ones (the cell, the agent's home, `readonly_paths`). */
  readonly?: string[];
  /** `none`: a new network namespace with loopback only. @default 'host' */
  network?: 'none' | 'host';
  /**
   * Run the agent as this host uid and gid (a daemon running as root: `[sandbox] uid`/`gid`):
   * the launcher then runs in no user namespace of its own and drops to them before the agent's
   * namespaces. Omitted: the agent is the daemon's user (root in its namespaces). Neither may be 0.
   */
  user?: SandboxUser;
  /** The agent's argv. */
  argv: string[];
}

/** The host uid and gid a root daemon's level-2 agents run as. */
export interface SandboxUser {
  uid: number;
  gid: number;
}

/**
 * The command line that runs `argv` at isolation level 2 (see {@link SANDBOX_LAUNCHER}).
 * @throws {DaemonError} DAEMON_SPAWN_FAILED for a relative path or one with a newline.
 */
export function sandboxArgv(spec: SandboxSpec): string[] {
  const check = (path: string, what: string) => {
    if (!isAbsolute(path) || /[\n\r]/.test(path)) {
      throw new DaemonError(
        'DAEMON_SPAWN_FAILED',
        `isolation level 2: ${what} ${JSON.stringify(path)} must be an absolute path without newlines`,
      );
    }
    return path;
  };
  const args = [check(spec.workdir, 'workdir')];
  if (spec.network === 'none') args.push('-n');
  const user = spec.user;
  if (user) {
    for (const id of [user.uid, user.gid])
      if (!Number.isSafeInteger(id) || id <= 0 || id >= 2 ** 32 - 1)
        throw new DaemonError(
          'DAEMON_SPAWN_FAILED',
          `isolation level 2: the agent's uid/gid ${user.uid}:${user.gid} must be whole numbers from 1 to 4294967294`,
        );
    args.push('-u', `${user.uid}:${user.gid}`);
  }
  for (const path of spec.hidden ?? []) args.push('-h', check(path, 'hidden path'));
  for (const path of spec.readonly ?? []) args.push('-r', check(path, 'read-only path'));
  for (const path of spec.writable) args.push('-w', check(path, 'writable path'));
  const namespaces = [
    // Root's own user namespace would map the agent to the host's root: none, the launcher drops.
    ...(user ? [] : ['--user', '--map-root-user']),
    '--mount',
    '--pid',
    '--fork',
    ...(spec.network === 'none' ? ['--net'] : []),
  ];
  return [
    spec.unshare,
    ...namespaces,
    '/bin/sh',
    '-c',
    SANDBOX_LAUNCHER,
    'pit-sandbox',
    ...args,
    '--',
    ...spec.argv,
  ];
}
