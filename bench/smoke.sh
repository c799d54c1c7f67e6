#!/usr/bin/env bash
# Runs every benchmark once at its --quick size, only to prove each one
# still runs (docs/performance.md): setup_rate.sh, sessions.sh (both with
# the Kamailio + rtpengine reference), expiry_storm.sh, release_latency.sh,
# msrp_relay.sh (with socat), workers.sh, one after the other. Their
# figures mean nothing at that size. bench/soak.sh is left out (its own
# --quick takes 2.5 minutes).
#
#   bench/smoke.sh
#
# Installs Kamailio and rtpengine when missing (bench/ref/ref.sh, root;
# socat and sipp come with scripts/deps.sh) and builds imsplit-cp,
# imsplit-up, imsplit-ctl and imsplit-msrp-peer into build/, configured as
# `scripts/test.sh --quick` configures it (RelWithDebInfo, no sanitizers):
# the build the benchmarks take by default. With IMSPLIT_BUILD_DIR set,
# that directory (already configured) is built and used instead.
#
# A benchmark fails when its run breaks: a daemon dies, calls fail,
# something is left over, or it has no figures (each script's header says
# what it checks). Each runs bounded by IMSPLIT_BENCH_TIMEOUT seconds
# (default 300). Prints every benchmark's output and how long it took;
# runs them all, then exits 1 if any failed.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
limit=${IMSPLIT_BENCH_TIMEOUT:-300}
BENCHES=(setup_rate sessions expiry_storm release_latency msrp_relay workers)

start=$(date +%s)
source "$src/bench/ref/ref.sh"
ref_install

if [[ -n ${IMSPLIT_BUILD_DIR:-} ]]; then
    build=$IMSPLIT_BUILD_DIR
else
    build=$src/build
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMSPLIT_TESTS=ON \
        -DIMSPLIT_ASAN=OFF -DIMSPLIT_UBSAN=OFF >/dev/null
fi
cmake --build "$build" -j "$(nproc)" --target imsplit-cp imsplit-up imsplit-ctl imsplit-msrp-peer
echo "bench smoke: set-up and build $(($(date +%s) - start)) s"

failed=()
times=()
for b in "${BENCHES[@]}"; do
    echo "== bench/$b.sh --quick"
    t0=$(date +%s.%N)
    rc=0
    IMSPLIT_BUILD_DIR=$build timeout -s TERM -k 10 "$limit" bash "$src/bench/$b.sh" --quick || rc=$?
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if ((rc == 0)); then
        echo "bench smoke: PASS bench/$b.sh ($secs s)"
    else
        ((rc == 124)) && echo "bench smoke: bench/$b.sh ran over $limit s" >&2
        echo "bench smoke: FAIL bench/$b.sh (exit $rc, $secs s)" >&2
        failed+=("$b")
    fi
    times+=("$b $secs")
done

echo
echo "bench smoke: $(printf '%s s, ' "${times[@]}" | sed 's/, $//'); all $(($(date +%s) - start)) s"
if ((${#failed[@]})); then
    echo "bench smoke: failed: ${failed[*]}" >&2
    exit 1
fi
