#!/bin/bash
# peer "cloudh5": this project's mount.cloudh5 (HDF5 files as per-chunk S3
# objects plus a manifest), from the build tree unless CLOUDH5_BIN names
# another binary.  Foreground (-f) so the harness tracks it by PID.
#
# Flags, each with its reason:
#   s3://BUCKET/cloudh5         its objects under the prefix cloudh5/ of the
#                               bucket the plain objects of s3fs/rclone are in
#   endpoint=, addressing=path  the bench server (s3rver: path-style, http)
#   cache_dir=                  the disk tier of the block cache (cleared
#                               for cold runs, like the peers' disk caches)
#   spool_dir=                  staging of written files in the state dir
# Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
# (lib/env.sh), with no ~/.aws files read.
#
# layout custom: a file's manifest is the object cloudh5/NAME, written last
# by a commit (its ETag changes with each committed version), so
# "visible in the bucket" is the manifest's ETag; r+ results are verified by
# re-reading through a fresh mount.
#
# prepare: the workload files are written *through the mount* once (cp),
# which splits them into chunk objects under cloudh5/.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
NAME=cloudh5
PIDF="$STATE/peer-$NAME.pid"
CACHE="$STATE/cache-$NAME"
REPO="$(cd "$PEER_DIR/../../.." && pwd)"
BIN="${CLOUDH5_BIN:-$REPO/build/fs/mount.cloudh5}"
: "${CLOUDH5_PREFIX:=cloudh5/}"
: "${CLOUDH5_OPTS:=endpoint=$C5_ENDPOINT,addressing=path,cache_dir=$CACHE,spool_dir=$STATE/spool-$NAME}"
SOURCE="s3://$C5_BUCKET/${CLOUDH5_PREFIX%/}"

case "${1:-}" in
  available) [ -x "$BIN" ] ;;
  flags) echo "$BIN $SOURCE MNT -f -o $CLOUDH5_OPTS" ;;
  mount)
    mnt="$2"; mkdir -p "$mnt"
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
      "$BIN" "$SOURCE" "$mnt" -f -o "$CLOUDH5_OPTS" \
      > "$STATE/peer-$NAME.log" 2>&1 &
    echo $! > "$PIDF"
    wait_mounted "$mnt" "$!" 30 ;;
  umount) generic_umount "$2" "$PIDF" ;;
  clear-cache) rm -rf "$CACHE" ;;
  layout) echo custom ;;
  object-state)
    curl -s -I -A c5bench-poll --max-time 5 "$C5_ENDPOINT/$C5_BUCKET/$CLOUDH5_PREFIX$2" \
      | awk 'tolower($1)=="etag:"{print $2}' | tr -d '\r' ;;
  prepare)
    mnt="$2"
    for f in big.h5 many.h5 climate.nc rplus.h5 huge.h5; do
      [ -e "$mnt/$f" ] || cp "$STATE/work/$f" "$mnt/$f"
    done
    mkdir -p "$mnt/dir1000"
    # 8 cp at once: each close() waits for its commit (a few round trips)
    if [ "$(ls "$mnt/dir1000" | wc -l)" != 1000 ]; then
      ls "$STATE/work/dir1000" | xargs -P 8 -I{} cp "$STATE/work/dir1000/{}" "$mnt/dir1000/{}"
    fi ;;
  *) echo "usage: $0 available|flags|layout|object-state KEY|mount MNT|umount MNT|clear-cache|prepare MNT" >&2; exit 2 ;;
esac
