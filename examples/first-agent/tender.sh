#!/bin/sh
# A first agent for the Pit, in POSIX shell with nothing but coreutils.
# The Pit starts it in its cell's workspace/ with LAZARUS_AGENT and LAZARUS_CELL_UUID set. Each
# work cycle it writes its heartbeat atomically (a temporary file, then mv) to
# ../.lazarus/heartbeats/<agent>.json; $$ is this shell's pid, the process the Pit started.
set -eu
beats=../.lazarus/heartbeats
mkdir -p "$beats"
cycle=0
while :; do
  # ... one unit of real work goes here ...
  tmp="$beats/.$LAZARUS_AGENT.json.$$.0.tmp"
  printf '{"agent":"%s","pid":%d,"timestamp":%s,"cycle":%d,"status":"working","cell_uuid":"%s"}\n' \
    "$LAZARUS_AGENT" "$$" "$(date +%s)" "$cycle" "$LAZARUS_CELL_UUID" >"$tmp"
  mv -f "$tmp" "$beats/$LAZARUS_AGENT.json"
  cycle=$((cycle + 1))
  sleep 2
done
