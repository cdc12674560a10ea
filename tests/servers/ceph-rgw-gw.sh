#!/usr/bin/env bash
# ceph-rgw-gw.sh - stop or start only the radosgw of an instance that
# ceph-rgw-up.sh started (its ceph-mon and ceph-osd keep running), to take
# the S3 server away and bring it back (tests/integration/
# test_s3_faults.py).
#
# Usage: ceph-rgw-gw.sh STATE_DIR stop [--kill]
#        ceph-rgw-gw.sh STATE_DIR start
#
#   stop     SIGTERM (radosgw's own shutdown: listeners and connections
#            closed), or SIGKILL with --kill (a crash: the kernel resets
#            the connections); returns once the process is gone and its
#            port free.  Only the PID in STATE_DIR/pids, and only while it
#            is still radosgw.
#   start    the same command line as ceph-rgw-up.sh (log appended to
#            log/radosgw.out), its PID replaces the old one in STATE_DIR/pids
#            (so ceph-rgw-down.sh stops it); returns once S3 answers on the
#            port of STATE_DIR/env (CEPH_RGW_TIMEOUT seconds, default 60).
# Prints the seconds the step took on stdout.
set -euo pipefail
D=${1:?usage: ceph-rgw-gw.sh STATE_DIR stop [--kill] | start}
CMD=${2:?usage: ceph-rgw-gw.sh STATE_DIR stop [--kill] | start}
TIMEOUT=${CEPH_RGW_TIMEOUT:-60}
die() { echo "[ceph-rgw-gw] ERROR: $*" >&2; exit 1; }
[ -f "$D/pids" ] && [ -f "$D/env" ] && [ -f "$D/ceph.conf" ] ||
  die "$D is not a running ceph-rgw-up.sh instance"
t0=$(date +%s.%N)
pid=$(awk '$1 == "radosgw" { print $2 }' "$D/pids")
alive() {
  [ -n "$pid" ] && [ -d "/proc/$pid" ] &&
    [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")" = radosgw ]
}
port=$(sed -n 's/^S3_ENDPOINT=.*:\([0-9]*\)$/\1/p' "$D/env")
# Gone: exited, and nothing listens on the port any more.  Not "alive"
# turning false: exe goes with the memory, before the files are closed.
gone() {
  { [ ! -d "/proc/$pid" ] ||
    [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null)" = Z ]; } &&
    [ -z "$(ss -Hltn "sport = :$port")" ]
}

case $CMD in
  stop)
    alive || die "radosgw (pid ${pid:-?}) is not running"
    if [ "${3:-}" = --kill ]; then kill -KILL "$pid"; else kill -TERM "$pid"; fi
    for _ in $(seq 1 $((TIMEOUT * 50))); do gone && break; sleep 0.02; done
    gone || die "radosgw ($pid) still running after $TIMEOUT s"
    ;;
  start)
    alive && die "radosgw ($pid) is already running"
    # A radosgw still closing its files keeps the port: wait for it.
    for _ in $(seq 1 $((TIMEOUT * 50))); do
      [ -z "$(ss -Hltn "sport = :$port")" ] && break
      sleep 0.02
    done
    url=$(sed -n 's/^S3_ENDPOINT=//p' "$D/env")
    nohup radosgw -c "$D/ceph.conf" -f -n client.rgw.a \
      >>"$D/log/radosgw.out" 2>&1 &
    new=$!
    if grep -q '^radosgw ' "$D/pids"; then
      sed -i "s/^radosgw .*/radosgw $new/" "$D/pids"
    else
      echo "radosgw $new" >>"$D/pids"
    fi
    deadline=$(( $(date +%s) + TIMEOUT ))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/" || true)" = 200 ]; do
      [ -d "/proc/$new" ] || die "radosgw exited (see $D/log/radosgw.out)"
      [ "$(date +%s)" -lt "$deadline" ] || die "radosgw did not answer on $url in $TIMEOUT s"
      sleep 0.02
    done
    ;;
  *) die "unknown command '$CMD'" ;;
esac
awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f\n", b - a }'
