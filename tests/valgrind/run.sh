#!/usr/bin/env bash
# Builds imsplit without sanitizers into build-vg/ (Debug, -O1) and runs the
# main end-to-end scenarios once with imsplit-cp, imsplit-up and imsplit-ctl
# under valgrind's memcheck (IMSPLIT_VALGRIND=1, tests/lib/lib.sh): a test
# fails on any memcheck error (invalid access, use of uninitialised bytes,
# bad free, ...) and on any definitely or indirectly lost block.
#
#   tests/valgrind/run.sh               the scenarios of TESTS below
#   tests/valgrind/run.sh TEST...       these (paths under tests/, e.g.
#                                       sip/test_cancel.sh)
#
# The tests run one after the other, each bounded by IMSPLIT_VALGRIND_TIMEOUT
# seconds (default 300). $IMSPLIT_VG_BUILD_DIR overrides build-vg/.
# Prints how long each test and the whole run took; exits 1 if any failed.
# Needs valgrind (scripts/deps.sh installs it).
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${IMSPLIT_VG_BUILD_DIR:-$src/build-vg}
limit=${IMSPLIT_VALGRIND_TIMEOUT:-300}

# Session timer expiry over UDP and TCP (BYE both legs, both directions
# released), BYE from the client and from the controlling side, CANCEL, a
# refresh by UPDATE, MSRP relayed both ways, and a worker killed with
# sessions on it (then started again).
TESTS=(
    sip/test_expiry_udp.sh
    sip/test_expiry_tcp.sh
    sip/test_bye_client.sh
    sip/test_bye_controlling.sh
    sip/test_cancel.sh
    sip/test_refresh_update.sh
    e2e/test_msrp_relay.sh
    fault/test_worker_kill.sh
)
(($# == 0)) || TESTS=("$@")

if ! command -v valgrind >/dev/null; then
    echo "run.sh: needs valgrind: apt-get install -y valgrind" >&2
    exit 69
fi

start=$(date +%s)
# -O1 keeps the stacks of memcheck's reports readable at a fraction of
# -O0's cost under valgrind; assertions stay in (no NDEBUG).
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
    -DIMSPLIT_TESTS=OFF -DIMSPLIT_ASAN=OFF -DIMSPLIT_UBSAN=OFF >/dev/null
cmake --build "$build" -j "$(nproc)"
echo "valgrind: build $(($(date +%s) - start)) s"

failed=()
for t in "${TESTS[@]}"; do
    t0=$(date +%s)
    rc=0
    IMSPLIT_VALGRIND=1 IMSPLIT_BUILD_DIR=$build IMSPLIT_SRC_DIR=$src \
        timeout -s TERM -k 10 "$limit" bash "$src/tests/$t" || rc=$?
    if ((rc == 0)); then
        echo "valgrind: PASS $t ($(($(date +%s) - t0)) s)"
    else
        ((rc == 124)) && echo "valgrind: $t ran over ${limit} s" >&2
        echo "valgrind: FAIL $t (exit $rc, $(($(date +%s) - t0)) s)" >&2
        failed+=("$t")
    fi
done

echo "valgrind: ${#TESTS[@]} tests, ${#failed[@]} failed, $(($(date +%s) - start)) s in all"
((${#failed[@]} == 0)) || { printf 'valgrind: failed: %s\n' "${failed[*]}" >&2; exit 1; }
