#!/usr/bin/env bash
# Install every Debian 12 package cloudh5 builds, tests and benchmarks with,
# and the npm packages of tests/servers (Azurite).
# Used by the README's quick start and by .ci/run.  Needs root (or sudo).
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config git ca-certificates
  libfuse3-dev fuse3
  libhdf5-dev hdf5-tools hdf5-filter-plugin
  libcurl4-openssl-dev libssl-dev libexpat1-dev liblz4-dev zlib1g-dev
  libcmocka-dev
  python3 python3-h5py python3-numpy python3-netcdf4 python3-botocore
  util-linux procps
  # the integration_s3.* tests' Ceph RGW (tests/servers/ceph-rgw-up.sh),
  # and integration_s3.tls's throw-away CA
  ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl openssl
  # integration_s3.faults_server's emulated link (tests/servers/wan-netns.sh:
  # namespaces, tbf, packet drops, nfqdelay built from the shared folder)
  iproute2 iptables libnetfilter-queue-dev
  # bench/edit_bench.py's peer (rclone mount) and its byte count (strace)
  rclone strace
  # thread stacks of a daemon that does not answer (ch5test.Mount)
  gdb
  # the integration_az.* tests' Azurite (npm ci in tests/servers, below)
  nodejs npm
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
  # NodeSource's nodejs package carries its own npm and conflicts with
  # Debian's: an npm that runs is enough.
  [ "$p" = npm ] && command -v npm >/dev/null && continue
  missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Azurite, at the version tests/servers/package.json pins (the exact tree
# in its package-lock.json), into tests/servers/node_modules.  Its one
# install script (protobufjs's version check) is not needed: skipped, as
# newer npm does by default.
servers=$(cd "$(dirname "$0")/../tests/servers" && pwd)
want=$(cd "$servers" && node -p 'require("./package.json").dependencies.azurite')
have=
if [ -f "$servers/node_modules/azurite/package.json" ]; then
  have=$(cd "$servers" && node -p 'require("./node_modules/azurite/package.json").version')
fi
if [ ! -x "$servers/node_modules/.bin/azurite-blob" ] || [ "$have" != "$want" ]; then
  echo "install-deps: npm ci in $servers (azurite $want)"
  (cd "$servers" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
else
  echo "install-deps: azurite $have present in $servers/node_modules"
fi
