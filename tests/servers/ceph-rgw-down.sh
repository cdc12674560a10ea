#!/usr/bin/env bash
# ceph-rgw-down.sh - stop exactly the daemons started by ceph-rgw-up.sh
# (cloudh5's copy of ../shared/servers/ceph-rgw-down.sh; default state
# directory /tmp/ch5-rgw, like its ceph-rgw-up.sh; the CTest fixture
# "ceph_rgw" of tests/integration runs it as its cleanup step).
# Usage: ceph-rgw-down.sh [STATE_DIR] [--keep]   (default dir: /tmp/ch5-rgw)
# Only PIDs listed in STATE_DIR/pids are signalled, and only if that PID is
# still the same program (checked via /proc/PID/exe).  STATE_DIR is removed
# afterwards unless --keep is given.
set -uo pipefail
D=${1:-/tmp/ch5-rgw}
KEEP=0; [ "${2:-}" = --keep ] && KEEP=1
[ -f "$D/pids" ] || { echo "[ceph-rgw-down] no $D/pids, nothing to stop" >&2; exit 0; }

alive() { # pid name
  [ -d "/proc/$1" ] || return 1
  local exe; exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  [ "$(basename "${exe% (deleted)}")" = "$2" ]
}

# stop in reverse start order: radosgw, osd, mon
tac "$D/pids" | while read -r name pid; do
  [ -n "${pid:-}" ] || continue
  if alive "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do alive "$pid" "$name" || break; sleep 0.1; done
    if alive "$pid" "$name"; then
      echo "[ceph-rgw-down] $name ($pid) ignored SIGTERM, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null
      for _ in $(seq 1 50); do alive "$pid" "$name" || break; sleep 0.1; done
    fi
    echo "[ceph-rgw-down] stopped $name ($pid)" >&2
  fi
done
if [ "$KEEP" = 0 ]; then rm -rf "$D"; else : >"$D/pids"; fi
