#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ and runs each one
# over its corpus for a bounded time, one after the other (ctest -L fuzz).
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target: the argument, else $IMSPLIT_FUZZ_SECONDS, else 20.
# TARGETs (fuzz_msrp, fuzz_sdp, fuzz_proto, fuzz_sip, fuzz_config,
# fuzz_ctl_script, fuzz_up_handler, fuzz_cp_handler) narrow the run.
# $IMSPLIT_FUZZ_BUILD_DIR overrides build-fuzz/. Exits non-zero when a
# target crashes, leaks, trips a sanitizer or one of its checks; the input
# is kept under BUILD/tests/fuzz/artifacts/<target>/. Needs clang and
# libFuzzer: apt-get install -y clang libclang-rt-14-dev.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${IMSPLIT_FUZZ_BUILD_DIR:-$src/build-fuzz}
secs=${IMSPLIT_FUZZ_SECONDS:-20}
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
if [[ $secs -lt 1 ]]; then
    echo "run.sh: SECONDS must be at least 1" >&2
    exit 64
fi
if ! command -v clang >/dev/null; then
    echo "run.sh: needs clang: apt-get install -y clang libclang-rt-14-dev" >&2
    exit 69
fi

CC=clang cmake -S "$src" -B "$build" -DIMSPLIT_FUZZ=ON -DIMSPLIT_TESTS=OFF \
    -DIMSPLIT_FUZZ_SECONDS="$secs" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz -j "$(nproc)"

filter=()
if [[ $# -gt 0 ]]; then
    regex=$(printf '|^fuzz\\.%s$' "$@")
    filter=(-R "${regex:1}")
fi
ctest --test-dir "$build" -L fuzz --output-on-failure "${filter[@]}"
