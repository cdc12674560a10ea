#!/usr/bin/env bash
# azurite-up.sh - start Azurite's blob service (npm azurite, pinned in
# package.json here) on 127.0.0.1 for the integration_az.* tests.
#
# cloudh5's own copy of the reference recipe in ../shared/servers/, adapted
# for the integration tests (tests/integration/CMakeLists.txt runs it as the
# CTest fixture "azurite"): Azurite from tests/servers/node_modules (`npm
# ci` here; .ci/install-deps.sh does it), never installed on the fly;
# another default port and state directory, so it never clashes with a
# developer's instance of the reference recipe (10000, /tmp/azurite-blob);
# blobs kept in memory (--inMemoryPersistence); AZURITE_REPLACE to stop a
# stale instance left in STATE_DIR by an interrupted run; the container the
# tests use is created; a start-up probe (azblob.py probe) proves that
# signatures are checked.
#
# Signatures: Azurite verifies Shared Key and SAS signatures by default
# (wrong key: 403 AuthenticationFailed).  Its --loose flag does not change
# that: in Azurite 3.37 it only makes the handlers ignore unsupported
# headers and parameters (read in dist/src/blob/handlers: `loose` reaches
# no authenticator).  It is not passed here, so an unsupported header the
# client sends fails loudly too.
#
# Usage:  azurite-up.sh [STATE_DIR]        (default: /tmp/ch5-azurite)
#         azurite-down.sh [STATE_DIR]      stops exactly the PID started here
#
# Environment knobs (all optional):
#   AZURITE_BIN        azurite-blob to run
#                      (default: tests/servers/node_modules/.bin/azurite-blob)
#   AZURITE_PORT       blob port                               (10010)
#   AZ_CONTAINER       container created at start-up           (test-container)
#   AZURITE_REPLACE=1  first stop the azurite-blob a previous run left in
#                      STATE_DIR (only that one, by the PID it recorded)
#   AZURITE_MEMORY_MB  limit of the in-memory blob data (MB); Azurite frees
#                      deleted blobs' data in a collection every 10 minutes
#                                                              (8192)
#   AZURITE_ON_DISK=1  keep blobs in STATE_DIR/data instead of in memory
#   AZURITE_DEBUG=1    write STATE_DIR/debug.log: every request, with the
#                      STRING TO SIGN Azurite computed
#   AZURITE_TIMEOUT    seconds to wait for readiness           (60)
#
# On success prints shell-sourceable lines (also written to STATE_DIR/env):
#   AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, AZURE_BLOB_ENDPOINT,
#   AZURE_STORAGE_CONNECTION_STRING, AZ_CONTAINER, AZURITE_DIR
set -euo pipefail

D=${1:-/tmp/ch5-azurite}
PORT=${AZURITE_PORT:-10010}
CONTAINER=${AZ_CONTAINER:-test-container}
MEMORY_MB=${AZURITE_MEMORY_MB:-8192}
TIMEOUT=${AZURITE_TIMEOUT:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AZBLOB=$HERE/../integration/azblob.py
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

log() { printf '[azurite-up %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
STARTED=0
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "$STARTED" = 1 ]; then
    log "start-up failed (rc=$rc); last lines of $D/azurite.out:"
    tail -n 10 "$D/azurite.out" 2>/dev/null | sed 's/^/    /' >&2 || true
    "$HERE/azurite-down.sh" "$D" --keep || true
  fi
}
trap on_exit EXIT

t0=$(date +%s.%N)

# ---------------------------------------------------------------- program
BIN=${AZURITE_BIN:-$HERE/node_modules/.bin/azurite-blob}
if [ ! -x "$BIN" ]; then
  if [ -n "${AZURITE_BIN:-}" ]; then
    die "AZURITE_BIN=$BIN is not an executable"
  fi
  die "$BIN is missing: run \`npm ci\` in $HERE (Debian packages nodejs and npm; .ci/install-deps.sh does both)"
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
command -v curl >/dev/null || die "curl not found (apt-get install curl)"

# ---------------------------------------------------------------- sanity
if [ -f "$D/pid" ] && [ "${AZURITE_REPLACE:-0}" = 1 ]; then
  log "stopping what a previous run left in $D (AZURITE_REPLACE=1)"
  "$HERE/azurite-down.sh" "$D" --keep || true
fi
if [ -f "$D/pid" ]; then
  pid=$(cat "$D/pid")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    die "$D already has a running azurite-blob (pid $pid); run azurite-down.sh $D first"
  fi
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "127.0.0.1:$PORT is already in use"
fi

rm -rf "$D"
mkdir -p "$D"
D=$(cd "$D" && pwd)

args=(--blobHost 127.0.0.1 --blobPort "$PORT" --silent --disableTelemetry)
if [ "${AZURITE_ON_DISK:-0}" = 1 ]; then
  mkdir -p "$D/data"
  args+=(--location "$D/data")
else
  # (--location is refused with --inMemoryPersistence; the working
  # directory, the state directory, gets no files then)
  args+=(--inMemoryPersistence --extentMemoryLimit "$MEMORY_MB")
fi
[ "${AZURITE_DEBUG:-0}" = 1 ] && args+=(--debug "$D/debug.log")

log "starting $BIN on 127.0.0.1:$PORT ($(node --version 2>/dev/null || echo 'node ?'))"
STARTED=1
cd "$D"
nohup "$BIN" "${args[@]}" >"$D/azurite.out" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$D/pid"

deadline=$(( $(date +%s) + TIMEOUT ))
until curl -s -o /dev/null "http://127.0.0.1:$PORT/"; do
  kill -0 "$pid" 2>/dev/null || die "azurite-blob exited (see $D/azurite.out)"
  [ "$(date +%s)" -lt "$deadline" ] || die "no answer on :$PORT within ${TIMEOUT}s"
  sleep 0.1
done
# Its start time tells azurite-down.sh that the PID is still this process.
awk '{print $22}' "/proc/$pid/stat" >"$D/pid.start"
t_up=$(date +%s.%N)

KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
ENDPOINT=http://127.0.0.1:$PORT/devstoreaccount1
cat >"$D/env" <<EOF
AZURE_STORAGE_ACCOUNT=devstoreaccount1
AZURE_STORAGE_KEY=$KEY
AZURE_BLOB_ENDPOINT=$ENDPOINT
AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$KEY;BlobEndpoint=$ENDPOINT;"
AZ_CONTAINER=$CONTAINER
AZURITE_DIR=$D
EOF

log "creating container '$CONTAINER'; probing signature checks"
"$PYTHON" "$AZBLOB" --env "$D/env" mkcontainer "$CONTAINER" >&2 ||
  die "could not create container $CONTAINER"
"$PYTHON" "$AZBLOB" --env "$D/env" probe "$CONTAINER" >&2 ||
  die "the start-up probe failed"
t_ready=$(date +%s.%N)

cat "$D/env"
awk -v a="$t0" -v b="$t_up" -v c="$t_ready" \
  'BEGIN{printf "[azurite-up] listening after %.1fs, container and probe %.1fs, total %.1fs\n", b-a, c-b, c-a}' >&2
log "pid: $pid"
