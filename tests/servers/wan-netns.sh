#!/usr/bin/env bash
# wan-netns.sh - an emulated WAN link between a client network namespace
# and this host, for fault tests of a client (mount.cloudh5) talking to a
# server on the host (tests/integration/test_s3_faults.py runs it).
#
#   host netns               netns $RT ("router", the WAN)          netns $CL
#   $H  $NET.1/30  <-veth->  $RT-a $NET.2/30   $RT-b $NET.5/30  <-veth-> $CL-c $NET.6/30
#   (server binds $NET.1)    egress: tbf (rate), FORWARD: drop       (client runs here:
#                            (statistic), PREROUTING: NFQUEUE ->      nsenter --net=
#                            nfqdelay (delay)                         /run/netns/$CL)
#
# Every impairment lives in the middle namespace, so deleting it removes
# every qdisc and iptables rule: nothing is ever added to the host's own
# tables.  This kernel has no sch_netem, so:
#   rate   tc tbf on both egress interfaces of the router;
#   loss   iptables -m statistic --mode random in the router's FORWARD chain
#          (both directions, each packet independently);
#   delay  nfqdelay (a userspace NFQUEUE daemon that holds every packet
#          DELAY; built from ../shared/bench-peers/netem/nfqdelay.c by the
#          caller) at the router's PREROUTING, where the packets no longer
#          belong to the sending socket (at the sender's OUTPUT, TCP small
#          queues would throttle the sender to one window per delay).
# Only link-local addresses (169.254.0.0/16) on veths made here are used;
# nothing is routed off this machine (the router knows only its two /30s).
#
# Usage (root):
#   wan-netns.sh up        create the namespaces (down first if they exist)
#   wan-netns.sh shape     set rate, loss and delay (again) from the knobs
#   wan-netns.sh down      stop nfqdelay (by its recorded PID), delete both
#                          namespaces (their veths, qdiscs and rules go too)
#   wan-netns.sh status    namespaces, qdisc and rule counters
#
# Knobs (environment):
#   CH5_WAN_NAME      name prefix of the namespaces and host veth  (ch5wan)
#   CH5_WAN_NET       first three octets of the /29 used  (169.254.233)
#   CH5_WAN_STATE     directory for nfqdelay's PID file and log (required
#                     for shape/down when a delay is set; default
#                     /tmp/$CH5_WAN_NAME)
#   CH5_WAN_RATE_MBIT link rate, each direction, 0 = no tbf       (0)
#   CH5_WAN_LOSS      drop probability per packet, each direction (0)
#   CH5_WAN_DELAY_MS  one-way delay, each direction, 0 = none     (0)
#   CH5_WAN_NFQDELAY  the nfqdelay binary (needed when a delay is set)
#   CH5_WAN_QUEUE     NFQUEUE number                              (233)
set -euo pipefail

NAME=${CH5_WAN_NAME:-ch5wan}
NET=${CH5_WAN_NET:-169.254.233}
STATE=${CH5_WAN_STATE:-/tmp/$NAME}
RATE=${CH5_WAN_RATE_MBIT:-0}
LOSS=${CH5_WAN_LOSS:-0}
DELAY=${CH5_WAN_DELAY_MS:-0}
NFQ=${CH5_WAN_QUEUE:-233}
RT=$NAME-rt
CL=$NAME-cl
H=$NAME-h

log() { printf '[wan-netns] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
in_rt() { ip netns exec "$RT" "$@"; }
ns_exists() { [ -e "/run/netns/$1" ]; }

stop_nfqdelay() {
  local f=$STATE/nfqdelay.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [ -n "$pid" ] && [ -d "/proc/$pid" ] &&
     [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")" = nfqdelay ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

do_down() {
  stop_nfqdelay
  ns_exists "$CL" && ip netns del "$CL"
  ns_exists "$RT" && ip netns del "$RT"
  ip link del "$H" 2>/dev/null || true
  return 0
}

do_up() {
  command -v iptables >/dev/null || die "iptables is missing (Debian package iptables)"
  if ns_exists "$RT" || ns_exists "$CL" || ip link show "$H" >/dev/null 2>&1; then
    log "$RT/$CL exist (an earlier run?): removing them first"
    do_down
  fi
  mkdir -p "$STATE"
  ip netns add "$RT"
  ip netns add "$CL"
  ip link add "$H" type veth peer name "$RT-a" netns "$RT"
  ip link add "$RT-b" netns "$RT" type veth peer name "$CL-c" netns "$CL"
  ip addr add "$NET.1/30" dev "$H"
  ip link set "$H" up
  in_rt ip link set lo up
  in_rt ip addr add "$NET.2/30" dev "$RT-a"
  in_rt ip addr add "$NET.5/30" dev "$RT-b"
  in_rt ip link set "$RT-a" up
  in_rt ip link set "$RT-b" up
  in_rt sysctl -q -w net.ipv4.ip_forward=1
  ip netns exec "$CL" ip link set lo up
  ip netns exec "$CL" ip addr add "$NET.6/30" dev "$CL-c"
  ip netns exec "$CL" ip link set "$CL-c" up
  ip netns exec "$CL" ip route add default via "$NET.5"
  ip route add "$NET.4/30" via "$NET.2" dev "$H"
  do_shape
  log "up: host $NET.1 <-> $RT <-> $CL $NET.6"
}

do_shape() {
  ns_exists "$RT" || die "$RT does not exist (run up first)"
  local dev burst
  for dev in "$RT-a" "$RT-b"; do
    in_rt tc qdisc del dev "$dev" root 2>/dev/null || true
    if [ "$RATE" != 0 ]; then
      # burst: at least 4 ms at the rate and two 64 KiB GSO packets
      burst=$(( RATE * 1000000 / 8 / 250 ))
      [ "$burst" -lt 131072 ] && burst=131072
      in_rt tc qdisc add dev "$dev" root tbf rate "${RATE}mbit" \
        burst "$burst" latency 25ms
    fi
  done
  in_rt iptables -F FORWARD
  if [ "$LOSS" != 0 ]; then
    in_rt iptables -A FORWARD -m statistic --mode random \
      --probability "$LOSS" -j DROP
  fi
  in_rt iptables -t mangle -F PREROUTING
  stop_nfqdelay
  if [ "$DELAY" != 0 ]; then
    [ -x "${CH5_WAN_NFQDELAY:-}" ] || die "CH5_WAN_NFQDELAY is not an executable"
    local us
    us=$(awk -v d="$DELAY" 'BEGIN { printf "%d", d * 1000 }')
    : >"$STATE/nfqdelay.log"
    # Not through in_rt: $! must be nfqdelay itself (ip netns exec execs).
    ip netns exec "$RT" "$CH5_WAN_NFQDELAY" -q "$NFQ" -d "$us" \
      >>"$STATE/nfqdelay.log" 2>&1 &
    echo $! >"$STATE/nfqdelay.pid"
    for _ in $(seq 1 50); do
      grep -q ready "$STATE/nfqdelay.log" && break
      sleep 0.1
    done
    grep -q ready "$STATE/nfqdelay.log" ||
      die "nfqdelay did not start: $(cat "$STATE/nfqdelay.log")"
    # Only after nfqdelay listens: a queue without a reader drops.
    in_rt iptables -t mangle -A PREROUTING -i "$RT-a" -j NFQUEUE --queue-num "$NFQ"
    in_rt iptables -t mangle -A PREROUTING -i "$RT-b" -j NFQUEUE --queue-num "$NFQ"
  fi
  log "shape: rate ${RATE} mbit (0: unlimited), loss $LOSS, delay ${DELAY} ms each way"
}

do_status() {
  ip netns list | grep -E "^($RT|$CL)( |$)" || echo "no namespaces"
  if ns_exists "$RT"; then
    in_rt tc -s qdisc show | grep -A2 tbf || true
    in_rt iptables -L FORWARD -v -x -n
    in_rt iptables -t mangle -L PREROUTING -v -x -n
  fi
}

case "${1:-}" in
  up) do_up ;;
  shape) do_shape ;;
  down) do_down ;;
  status) do_status ;;
  *) echo "usage: $0 up|shape|down|status" >&2; exit 2 ;;
esac
