#!/usr/bin/env bash
# Installs the restart peers that bench/restart-latency.bench.ts compares the Pit with:
# supervisord (Debian's `supervisor` package) and PM2 (npm, into bench/setup/.cache, never the
# workspace). Idempotent: what is already installed is left alone. Prints one line per peer.
# Run as root for apt (CI is root); without root, supervisord is reported missing and the
# benchmark's row says so.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
PM2_VERSION="${PM2_VERSION:-7.0.4}"
cache="$here/.cache"

if command -v supervisord >/dev/null 2>&1; then
  echo "supervisord: present ($(supervisord --version 2>/dev/null))"
elif [ "$(id -u)" = 0 ]; then
  # policy-rc.d (present in these containers) keeps apt from starting the system service.
  # Another apt run may hold the dpkg lock: wait for it (up to 5 min) instead of failing.
  apt=(apt-get -o DPkg::Lock::Timeout=300 -y -qq)
  if (DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends supervisor >/dev/null 2>&1 || { "${apt[@]}" update && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends supervisor >/dev/null; }); then
    echo "supervisord: installed ($(supervisord --version 2>/dev/null))"
  else
    echo "supervisord: apt-get install supervisor failed"
  fi
else
  echo "supervisord: not installed and not root (apt-get install -y supervisor needs root)"
fi

pm2_bin="$cache/pm2/node_modules/pm2/bin/pm2"
if [ -x "$pm2_bin" ] && [ "$(node -p "require('$cache/pm2/node_modules/pm2/package.json').version" 2>/dev/null)" = "$PM2_VERSION" ]; then
  echo "pm2: present ($PM2_VERSION in $cache/pm2)"
else
  mkdir -p "$cache/pm2"
  [ -f "$cache/pm2/package.json" ] || echo '{"private":true}' > "$cache/pm2/package.json"
  if (cd "$cache/pm2" && npm install --no-audit --no-fund --loglevel=error --no-package-lock "pm2@$PM2_VERSION" >/dev/null 2>&1); then
    echo "pm2: installed ($PM2_VERSION in $cache/pm2)"
  else
    echo "pm2: npm install pm2@$PM2_VERSION failed"
  fi
fi
exit 0
