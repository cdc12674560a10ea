#!/usr/bin/env bash
# azurite-down.sh - stop the azurite-blob started by azurite-up.sh
# (cloudh5's copy of ../shared/servers/azurite-down.sh; default state
# directory /tmp/ch5-azurite, like its azurite-up.sh; the CTest fixture
# "azurite" of tests/integration runs it as its cleanup step).
# Usage: azurite-down.sh [STATE_DIR] [--keep]   (default dir: /tmp/ch5-azurite)
# Only the PID in STATE_DIR/pid is signalled, and only while it is still
# the process azurite-up.sh started (same start time as recorded in
# STATE_DIR/pid.start, else a command line naming azurite).  STATE_DIR is
# removed afterwards unless --keep is given (then its output log stays).
set -uo pipefail
D=${1:-/tmp/ch5-azurite}
KEEP=0; [ "${2:-}" = --keep ] && KEEP=1
[ -f "$D/pid" ] || { echo "[azurite-down] no $D/pid, nothing to stop" >&2; exit 0; }
pid=$(cat "$D/pid")

ours() {
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  # a zombie is gone for our purposes
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  if [ -s "$D/pid.start" ]; then
    [ "$(awk '{print $22}' "/proc/$pid/stat" 2>/dev/null)" = "$(cat "$D/pid.start")" ]
  else
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q azurite
  fi
}

if ours; then
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do ours || break; sleep 0.1; done
  if ours; then
    echo "[azurite-down] azurite-blob ($pid) ignored SIGTERM, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null
    for _ in $(seq 1 50); do ours || break; sleep 0.1; done
  fi
  echo "[azurite-down] stopped azurite-blob ($pid)" >&2
fi
if [ "$KEEP" = 0 ]; then rm -rf "$D"; else rm -f "$D/pid" "$D/pid.start"; fi
