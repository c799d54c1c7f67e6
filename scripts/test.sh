#!/usr/bin/env bash
# Builds imsplit with AddressSanitizer and UndefinedBehaviorSanitizer into
# build-san/ and runs every test (unit, sip, proto, e2e) with ctest.
#   --quick       no sanitizers, build into build/ (faster)
#   --valgrind    then also the main end-to-end scenarios once with the
#                 daemons under valgrind's memcheck, tests/valgrind/run.sh
#                 (no sanitizers, build-vg/)
#   --fuzz        then also every libFuzzer target for $IMSPLIT_FUZZ_SECONDS
#                 (default 5) each, tests/fuzz/run.sh (clang, build-fuzz/)
#   --container   then also the container test, tests/deploy/test_container.sh
#                 (root; installs podman and builds the image: docs/deploy.md)
#   --bench       then also every benchmark once at its --quick size, only to
#                 prove each runs, bench/smoke.sh (builds build/ without
#                 sanitizers; root: installs Kamailio and rtpengine for the
#                 reference: docs/performance.md)
# The extras run in this order, whatever the order of the flags. The exit
# code is ctest's if it failed, else the first failing extra's.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=0
container=0
valgrind=0
fuzz=0
bench=0
for arg in "$@"; do
    case $arg in
        --quick) quick=1 ;;
        --container) container=1 ;;
        --valgrind) valgrind=1 ;;
        --fuzz) fuzz=1 ;;
        --bench) bench=1 ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown argument $arg" >&2; exit 64 ;;
    esac
done

bash scripts/deps.sh

if ((quick)); then
    dir=build
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMSPLIT_TESTS=ON \
        -DIMSPLIT_ASAN=OFF -DIMSPLIT_UBSAN=OFF
else
    dir=build-san
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DIMSPLIT_TESTS=ON \
        -DIMSPLIT_ASAN=ON -DIMSPLIT_UBSAN=ON
    # Leak checking for every test binary; a sanitizer report fails it.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
cmake --build "$dir" -j "$(nproc)"

# System tests hold a shared RESOURCE_LOCK, so -j only overlaps unit tests.
rc=0
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" || rc=$?

if ((valgrind)); then
    vrc=0
    bash tests/valgrind/run.sh || vrc=$?
    ((rc != 0)) || rc=$vrc
fi
if ((fuzz)); then
    frc=0
    IMSPLIT_FUZZ_SECONDS=${IMSPLIT_FUZZ_SECONDS:-5} bash tests/fuzz/run.sh || frc=$?
    ((rc != 0)) || rc=$frc
fi
if ((container)); then
    crc=0
    bash tests/deploy/test_container.sh || crc=$?
    ((rc != 0)) || rc=$crc
fi
if ((bench)); then
    brc=0
    bash bench/smoke.sh || brc=$?
    ((rc != 0)) || rc=$brc
fi
exit "$rc"
