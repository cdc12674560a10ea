#!/bin/bash
# Builds cloudh5 (if needed) and runs the whole test suite (unit and
# integration tests) with CTest.
#
# usage: tests/run-all.sh [--asan] [BUILD_DIR] [-- CTEST_ARGS...]
#
#   --asan     build with -DCLOUDH5_SANITIZE=ON (ASan+UBSan); the default
#              build directory is then build-asan/ instead of build/
#   BUILD_DIR  where to configure and build (default: build/ in the source
#              tree); configured on first use
#   CTEST_ARGS passed to ctest, e.g. -- -L integration or -- -R corpus
#
# The integration tests mount FUSE file systems: they need /dev/fuse and
# fusermount3 (package fuse3), and the Debian packages listed in .ci/run.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
asan=0
build=
while [ $# -gt 0 ]; do
  case $1 in
    --asan) asan=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
  esac
done
if [ -z "$build" ]; then
  if [ $asan = 1 ]; then build=$src/build-asan; else build=$src/build; fi
fi
jobs=$(nproc 2>/dev/null || echo 2)

cfg=()
if [ $asan = 1 ]; then
  cfg+=(-DCLOUDH5_SANITIZE=ON)
  # LeakSanitizer cannot run under ptrace (some containers, debuggers):
  # probe for it and say so rather than fail every daemon exit.
  if [ -z "${ASAN_OPTIONS:-}" ]; then
    leaks=1
    probe=$(mktemp -d)
    if echo 'int main(void){return 0;}' |
        cc -fsanitize=address -x c - -o "$probe/p" 2>/dev/null; then
      if ! ASAN_OPTIONS=detect_leaks=1 "$probe/p" >"$probe/out" 2>&1; then
        leaks=0
        echo "WARNING: LeakSanitizer does not work here; running with" \
             "detect_leaks=0:" >&2
        sed 's/^/    /' "$probe/out" >&2
      fi
    fi
    rm -rf "$probe"
    export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
  fi
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  echo "ASAN_OPTIONS=$ASAN_OPTIONS"
  echo "UBSAN_OPTIONS=$UBSAN_OPTIONS"
fi

if [ ! -f "$build/CMakeCache.txt" ] || [ ${#cfg[@]} -gt 0 ]; then
  cmake -S "$src" -B "$build" "${cfg[@]}"
fi
cmake --build "$build" -j "$jobs"

if [ ! -e /dev/fuse ]; then
  echo "WARNING: /dev/fuse is missing: the integration tests will fail" >&2
fi
if [ ! -d "$src/../shared/corpus" ]; then
  echo "WARNING: $src/../shared/corpus is missing: the corpus test will" \
       "be SKIPPED" >&2
fi

ctest --test-dir "$build" --output-on-failure -j "$jobs" "$@"
