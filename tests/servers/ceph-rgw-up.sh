#!/usr/bin/env bash
# ceph-rgw-up.sh - bring up a throw-away single-node Ceph cluster
# (1 ceph-mon, 1 ceph-osd on memstore, 1 radosgw) from Debian bookworm
# packages, entirely on 127.0.0.1, serving S3 (SigV4 signatures verified) on
# 127.0.0.1:7481.  No ceph-mgr, no systemd, no root-owned system paths used
# except the apt install.
#
# cloudh5's own copy of the reference recipe in ../shared/servers/, adapted
# for the integration tests (tests/integration/CMakeLists.txt runs it as the
# CTest fixture "ceph_rgw"): other default ports and state directory, so it
# never clashes with a developer's instance of the reference recipe (S3 on
# 7480, mon on 3300/6789, state in /tmp/ceph-rgw or /tmp/rgw); a larger
# memstore (the 1 GiB file of test_edit_bytes.py must fit); beast with
# tcp_nodelay=1 (without it every request after the first on a kept-alive
# connection waits ~40 ms: Nagle against the client's delayed ACK; the
# 110-file corpus copy took 49 s instead of a few); CEPH_RGW_REPLACE to stop
# a stale instance left in STATE_DIR by an interrupted run.
#
# Usage:  ceph-rgw-up.sh [STATE_DIR]          (default: /tmp/ch5-rgw)
#         ceph-rgw-down.sh [STATE_DIR]        stops exactly the PIDs started here
#
# Environment knobs (all optional):
#   CEPH_RGW_PORT        S3 port                         (7481)
#   CEPH_RGW_EXTRA_ADDRS  more addresses radosgw listens on, on the same
#                        port, space-separated (an address of a test
#                        network namespace's veth; it must exist first)
#   CEPH_MON_PORT_V2     mon msgr2 port                  (3301)
#   CEPH_MON_PORT_V1     mon msgr1 port                  (6790)
#   CEPH_RGW_ACCESS_KEY  S3 access key                   (testaccesskey)
#   CEPH_RGW_SECRET_KEY  S3 secret key                   (testsecretkey)
#   CEPH_RGW_BUCKET      bucket created at start-up      (test-bucket)
#   CEPH_RGW_MEMSTORE_BYTES  OSD capacity (RAM-backed, used as written)
#                                                        (4294967296)
#   CEPH_RGW_NO_INSTALL=1    skip apt-get (fail if a program is missing)
#   CEPH_RGW_REPLACE=1   first stop the daemons a previous run left running
#                        in STATE_DIR (only those, by the PIDs it recorded)
#   CEPH_RGW_TIMEOUT     seconds to wait for readiness   (180)
#   CEPH_RGW_STS_KEY     16 characters: turn on STS (AssumeRole) with this
#                        key; the user gets the caps to create roles
#   CEPH_RGW_DNS_NAME    rgw_dns_name: a request to BUCKET.<this name> is
#                        virtual-hosted (curl resolves *.localhost to
#                        127.0.0.1 by itself)              (localhost)
#   CEPH_RGW_SSL_PORT    also serve S3 over https on 127.0.0.1:this port
#                        (beast ssl_endpoint), with:
#   CEPH_RGW_SSL_CERT    PEM server certificate (chain)  (needed with the port)
#   CEPH_RGW_SSL_KEY     PEM private key of it           (needed with the port)
#
# On success prints shell-sourceable lines (also written to STATE_DIR/env):
#   S3_ENDPOINT=http://127.0.0.1:7481 AWS_ACCESS_KEY_ID=... etc.
#   (S3_DNS_NAME=the rgw_dns_name; with CEPH_RGW_SSL_PORT also S3_TLS_PORT)
set -euo pipefail

D=${1:-/tmp/ch5-rgw}
PORT=${CEPH_RGW_PORT:-7481}
MON2=${CEPH_MON_PORT_V2:-3301}
MON1=${CEPH_MON_PORT_V1:-6790}
AK=${CEPH_RGW_ACCESS_KEY:-testaccesskey}
SK=${CEPH_RGW_SECRET_KEY:-testsecretkey}
BUCKET=${CEPH_RGW_BUCKET:-test-bucket}
MEMBYTES=${CEPH_RGW_MEMSTORE_BYTES:-4294967296}
TIMEOUT=${CEPH_RGW_TIMEOUT:-180}
DNS_NAME=${CEPH_RGW_DNS_NAME:-localhost}
SSL_PORT=${CEPH_RGW_SSL_PORT:-}
STS_KEY=${CEPH_RGW_STS_KEY:-}
STS_CONF=""
if [ -n "$STS_KEY" ]; then
  [ ${#STS_KEY} = 16 ] || { echo "CEPH_RGW_STS_KEY must be 16 characters" >&2; exit 1; }
  STS_CONF="rgw s3 auth use sts = true
rgw sts key = $STS_KEY"
fi
SSL_CERT=${CEPH_RGW_SSL_CERT:-}
SSL_KEY=${CEPH_RGW_SSL_KEY:-}

log() { printf '[ceph-rgw-up %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STARTED=0
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "$STARTED" = 1 ]; then
    log "start-up failed (rc=$rc); last log lines:"
    tail -n 5 "$D"/log/*.log "$D"/log/*.out 2>/dev/null | sed 's/^/    /' >&2 || true
    log "stopping the daemons this run started (logs kept in $D/log)"
    "$HERE/ceph-rgw-down.sh" "$D" --keep || true
  fi
}
trap on_exit EXIT

t0=$(date +%s.%N)

FRONTEND="beast endpoint=127.0.0.1:$PORT"
for a in ${CEPH_RGW_EXTRA_ADDRS:-}; do FRONTEND+=" endpoint=$a:$PORT"; done
FRONTEND+=" tcp_nodelay=1"
if [ -n "$SSL_PORT" ]; then
  [ -r "$SSL_CERT" ] && [ -r "$SSL_KEY" ] ||
    die "CEPH_RGW_SSL_PORT needs readable CEPH_RGW_SSL_CERT and CEPH_RGW_SSL_KEY files (got '$SSL_CERT', '$SSL_KEY')"
  SSL_CERT=$(cd "$(dirname "$SSL_CERT")" && pwd)/$(basename "$SSL_CERT")
  SSL_KEY=$(cd "$(dirname "$SSL_KEY")" && pwd)/$(basename "$SSL_KEY")
  FRONTEND="$FRONTEND ssl_endpoint=127.0.0.1:$SSL_PORT ssl_certificate=$SSL_CERT ssl_private_key=$SSL_KEY"
fi

# ---------------------------------------------------------------- install
need=()
for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool uuidgen curl; do
  command -v "$b" >/dev/null 2>&1 || need+=("$b")
done
if [ ${#need[@]} -gt 0 ] && [ "${CEPH_RGW_NO_INSTALL:-0}" = 1 ]; then
  die "missing programs: ${need[*]} (install ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl, e.g. with .ci/install-deps.sh)"
fi
if [ "${CEPH_RGW_NO_INSTALL:-0}" != 1 ]; then
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ceph packages (missing: ${need[*]})"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl >/dev/null
  fi
fi
t_inst=$(date +%s.%N)

# ---------------------------------------------------------------- sanity
if [ -f "$D/pids" ] && [ "${CEPH_RGW_REPLACE:-0}" = 1 ]; then
  log "stopping what a previous run left in $D (CEPH_RGW_REPLACE=1)"
  "$HERE/ceph-rgw-down.sh" "$D" --keep || true
fi
if [ -f "$D/pids" ]; then
  while read -r name pid; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      die "$D already has a running $name (pid $pid); run ceph-rgw-down.sh $D first"
    fi
  done <"$D/pids"
fi
for p in "$PORT" "$MON2" "$MON1" $SSL_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    die "127.0.0.1:$p is already in use"
  fi
done

rm -rf "$D"
mkdir -p "$D"/{run,log,mon/ceph-a,osd/ceph-0,rgw,tmp}
D=$(cd "$D" && pwd)
: >"$D/pids"
STARTED=1

FSID=$(uuidgen)
OSD_UUID=$(uuidgen)
CONF=$D/ceph.conf
KEYRING=$D/keyring

cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON2,v1:127.0.0.1:$MON1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $KEYRING
run dir = $D/run
admin socket = $D/run/\$cluster-\$name.asok
pid file = $D/run/\$cluster-\$name.pid
log file = $D/log/\$cluster-\$name.log
log to stderr = false
err to stderr = true
crash dir = $D/tmp
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
# A full OSD pauses every write (RGW's PUTs hang, then time out): the
# memstore holds the whole suite's objects at once, so allow it nearly
# full, and free deleted objects' tails soon (GC) rather than in an hour.
mon osd full ratio = 0.99
mon osd backfillfull ratio = 0.98
mon osd nearfull ratio = 0.97
osd failsafe full ratio = 0.995
# quiet, and fast to converge on a single node
debug ms = 0/0
mon warn on insecure global id reclaim allowed = false
auth allow insecure global id reclaim = false
paxos propose interval = 0.1
paxos min wait = 0.01

[mon]
mon data = $D/mon/\$cluster-\$id
mon cluster log file = $D/log/mon-cluster.log

[osd]
osd data = $D/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $MEMBYTES
osd crush initial weight = 1
osd crush update on start = true
osd memory target = 939524096
osd op num shards = 1
osd op num threads per shard = 2

[client.rgw.a]
rgw frontends = $FRONTEND
rgw data = $D/rgw
rgw dns name = $DNS_NAME
rgw thread pool size = 32
rgw enable usage log = false
rgw enable ops log = false
rgw gc processor period = 10
rgw gc obj min wait = 0
rgw enable lc threads = false
rgw dynamic resharding = false
rgw init timeout = $TIMEOUT
$STS_CONF
EOF

log "creating keys + monmap"
ceph-authtool --create-keyring "$KEYRING" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n osd.0 \
  --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n client.rgw.a \
  --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
monmaptool --create --clobber --fsid "$FSID" \
  --addv a "[v2:127.0.0.1:$MON2,v1:127.0.0.1:$MON1]" "$D/monmap" >/dev/null

C=(-c "$CONF")

log "mkfs + start ceph-mon"
ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap" --keyring "$KEYRING" \
  >"$D/log/mkfs-mon.out" 2>&1 || { cat "$D/log/mkfs-mon.out" >&2; die "ceph-mon --mkfs failed"; }
nohup ceph-mon "${C[@]}" -f -i a >"$D/log/ceph-mon.a.out" 2>&1 &
echo "ceph-mon $!" >>"$D/pids"

# wait for mon quorum (the ceph CLI blocks until it can talk to the mon)
ceph "${C[@]}" --connect-timeout 60 mon stat >/dev/null 2>&1 || die "mon did not come up (see $D/log)"

log "creating + starting ceph-osd (memstore, $MEMBYTES bytes)"
OSD_ID=$(ceph "${C[@]}" osd new "$OSD_UUID")
[ "$OSD_ID" = 0 ] || die "unexpected osd id '$OSD_ID'"
ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$D/log/mkfs-osd.out" 2>&1 ||
  { cat "$D/log/mkfs-osd.out" >&2; die "ceph-osd --mkfs failed"; }
nohup ceph-osd "${C[@]}" -f -i 0 >"$D/log/ceph-osd.0.out" 2>&1 &
echo "ceph-osd $!" >>"$D/pids"

deadline=$(( $(date +%s) + TIMEOUT ))
until ceph "${C[@]}" osd dump 2>/dev/null | grep -q '^osd\.0 up *in'; do
  [ "$(date +%s)" -lt "$deadline" ] || die "osd.0 did not come up (see $D/log)"
  sleep 0.5
done

log "starting radosgw on 127.0.0.1:$PORT"
nohup radosgw "${C[@]}" -f -n client.rgw.a >"$D/log/radosgw.out" 2>&1 &
echo "radosgw $!" >>"$D/pids"

until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)" = 200 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "radosgw did not answer on :$PORT (see $D/log)"
  sleep 0.5
done

if [ -n "$SSL_PORT" ]; then
  # Only that https is served: the tests check the certificate themselves.
  until [ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$SSL_PORT/" || true)" = 200 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "radosgw did not answer https on :$SSL_PORT (see $D/log)"
    sleep 0.5
  done
fi

log "creating S3 user + bucket '$BUCKET'"
radosgw-admin "${C[@]}" user create --uid=tester --display-name="Test User" \
  --access-key="$AK" --secret-key="$SK" >"$D/log/user-create.json" 2>"$D/log/user-create.err" ||
  { cat "$D/log/user-create.err" >&2; die "radosgw-admin user create failed"; }
if [ -n "$STS_KEY" ]; then
  radosgw-admin "${C[@]}" caps add --uid=tester --caps="roles=*" \
    >"$D/log/caps-add.json" 2>"$D/log/caps-add.err" ||
    { cat "$D/log/caps-add.err" >&2; die "radosgw-admin caps add failed"; }
fi

SIG=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK")
code=""
until [ "$code" = 200 ]; do
  code=$(curl -s -o "$D/log/mkbucket.out" -w '%{http_code}' "${SIG[@]}" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "http://127.0.0.1:$PORT/$BUCKET" || true)
  [ "$code" = 200 ] && break
  [ "$(date +%s)" -lt "$deadline" ] || { cat "$D/log/mkbucket.out" >&2; die "bucket create failed ($code)"; }
  sleep 0.5
done

# first PUT + GET round trip proves the data path is live
echo "ready $(date)" >"$D/tmp/probe"
code=$(curl -s -o /dev/null -w '%{http_code}' "${SIG[@]}" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
  -T "$D/tmp/probe" "http://127.0.0.1:$PORT/$BUCKET/.ready-probe")
[ "$code" = 200 ] || die "probe PUT failed ($code)"
t_ready=$(date +%s.%N)
code=$(curl -s -o /dev/null -w '%{http_code}' "${SIG[@]}" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
  -X DELETE "http://127.0.0.1:$PORT/$BUCKET/.ready-probe")

cat >"$D/env" <<EOF
S3_ENDPOINT=http://127.0.0.1:$PORT
S3_REGION=us-east-1
S3_BUCKET=$BUCKET
AWS_ACCESS_KEY_ID=$AK
AWS_SECRET_ACCESS_KEY=$SK
AWS_DEFAULT_REGION=us-east-1
CEPH_RGW_DIR=$D
CEPH_CONF=$CONF
S3_DNS_NAME=$DNS_NAME
EOF
[ -z "$SSL_PORT" ] || echo "S3_TLS_PORT=$SSL_PORT" >>"$D/env"
cat "$D/env"
awk -v a="$t0" -v b="$t_inst" -v c="$t_ready" \
  'BEGIN{printf "[ceph-rgw-up] install/check %.1fs, cluster start to first PUT %.1fs, total %.1fs\n", b-a, c-b, c-a}' >&2
log "pids: $(tr '\n' ' ' <"$D/pids")"
