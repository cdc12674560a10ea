#!/bin/bash
# peer "local": the workload files on this machine's disk (a bind mount of
# the generated files), no network.  The baseline for warm reads ("within
# 1.5x of reading the same file from the page cache of a local disk"); its
# cold runs read from the disk after drop_caches.  Read scenarios only:
# layout "local" makes bench.py skip the write and r+ scenarios.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
case "${1:-}" in
  available) true ;;
  flags) echo "mount --bind $STATE/work MNT" ;;
  mount) mkdir -p "$2"; mountpoint -q "$2" || mount --bind "$STATE/work" "$2" ;;
  umount) mountpoint -q "$2" && umount "$2" || true ;;
  clear-cache) true ;;
  layout) echo local ;;
  prepare) true ;;
  *) echo "usage: $0 available|flags|layout|mount MNT|umount MNT|clear-cache|prepare MNT" >&2; exit 2 ;;
esac
