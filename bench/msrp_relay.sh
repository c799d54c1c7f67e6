#!/usr/bin/env bash
# MSRP relay benchmark: imsplit-up against a plain TCP relay (socat), same
# peers, same payload, same run; and the worker's memory per idle leg.
#
#   bench/msrp_relay.sh [--quick]
#
# Builds nothing: takes the binaries from IMSPLIT_BUILD_DIR (default
# build/), including tools/imsplit-msrp-peer. Everything on 127.0.0.1.
# --quick is a tiny run that only proves the bench works (CI): 4 MiB,
# 50 latency messages, 20 idle sessions. The bench fails if a run breaks:
# a daemon dies, a peer finds a byte wrong or a message missing, sipp
# calls fail, the worker never holds the idle legs, something is left
# over.
#
# What it does, with one imsplit-cp and one imsplit-up:
#  1. Memory per idle leg: RSS (VmRSS) of the fresh worker, then K sessions
#     set up by sipp (2K legs allocated, no MSRP connection, no traffic),
#     RSS again; prints (after - before) / 2K. The sessions then end by BYE.
#  2. One MSRP session through the worker: the client peer connects to the
#     worker's client leg, the worker connects out to the controlling peer.
#     The client peer sends LAT_N messages of 1 KiB, one per millisecond
#     (latency), then THR_MIB messages of 1 MiB in 64 KiB chunks, as fast as
#     a window of 32 unanswered SENDs allows (throughput). The controlling
#     peer checks every byte.
#  3. The same two peers' programs, same arguments, through
#     `socat TCP-LISTEN:P,reuseaddr TCP:127.0.0.1:Q` instead of the worker
#     (--no-path-check: socat does not rewrite To-Path/From-Path, and the
#     200s come from the far peer instead of per hop).
#
# How it measures: each peer writes "S m t" when message m starts to leave
# (first byte handed to the kernel) and "R m t" when m has arrived whole and
# verified, with t from CLOCK_MONOTONIC, which Linux keeps system-wide, so
# the sender's and the receiver's stamps compare directly. Latency of m is
# R - S (end to end: sender's socket, relay, receiver's parse), p50/p99
# over the paced 1 KiB messages, which travel alone. Throughput is the
# 1 MiB messages' bytes over (last R - first S) of that group.
#
# Environment: MSRP_BENCH_MIB (throughput MiB, default 256), MSRP_BENCH_LAT
# (latency messages, default 2000), MSRP_BENCH_SESSIONS (idle sessions for
# the memory figure, default 2000), MSRP_BENCH_SOCAT_OPTS (extra socat
# options, default none: socat then moves at most 8 KiB per read/write;
# "-b 65536" gives it the chunk size).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_quick_args "$@"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export IMSPLIT_SRC_DIR=$SRC
export IMSPLIT_BUILD_DIR=${IMSPLIT_BUILD_DIR:-$SRC/build}
T_WORKERS=1
T_SIPP_TRACE_MSG=0
source "$SRC/tests/lib/lib.sh"
source "$SRC/tests/e2e/msrp_lib.sh"

if ((QUICK)); then
    THR_MIB=4 LAT_N=50 K=20 ROOM_MS=1500
else
    THR_MIB=${MSRP_BENCH_MIB:-256} LAT_N=${MSRP_BENCH_LAT:-2000} K=${MSRP_BENCH_SESSIONS:-2000} ROOM_MS=3000
fi
((THR_MIB >= 1 && THR_MIB <= 4096)) || { echo "MSRP_BENCH_MIB out of 1..4096" >&2; exit 64; }
((LAT_N >= 10 && LAT_N <= 100000)) || { echo "MSRP_BENCH_LAT out of 10..100000" >&2; exit 64; }
((K >= 1 && K <= 20000)) || { echo "MSRP_BENCH_SESSIONS out of 1..20000" >&2; exit 64; }
command -v socat >/dev/null || { echo "socat not found (scripts/deps.sh installs it)" >&2; exit 1; }

t_init msrp_bench
m_init
MIB=1048576
SE=600 # nothing expires during the bench
PEER_MS=$((30000 + THR_MIB * 200))
SEND=(--send "$LAT_N" --size 1024 --interval-us 1000
      --send "$THR_MIB" --size $MIB --chunk 65536)
EXPECT=(--expect "$LAT_N" --expect-size 1024 --expect "$THR_MIB" --expect-size $MIB)

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

t_start_stack --session-expires $SE --min-se 2 --log-level warn
UP_PID=${T_PID_OF[up-1]}

# ---- 1. memory per idle leg ---------------------------------------------------
RATE=400
# The sessions stay up through the set-up and the measurement (ROOM_MS).
HOLD_MS=$((K * 1000 / RATE + ROOM_MS))
sleep 0.5
rss0=$(rss_kib "$UP_PID")
cp_rss0=$(rss_kib "$T_CP_PID")
t_sipp_uas muas ctrl_answer.xml -m "$K"
t_sipp_uac muac client_bye.xml -key se $SE -m "$K" -l "$K" -r $RATE -rp 1000 -d $HOLD_MS
t_wait_metric up-1 imsplit_up_legs_active -eq $((2 * K)) $((K / RATE + 20)) ||
    t_fail "the worker never held $((2 * K)) legs"
sleep 0.5
rss1=$(rss_kib "$UP_PID")
cp_rss1=$(rss_kib "$T_CP_PID")
t_expect_sipp_ok muac muas
t_wait_metric up-1 imsplit_up_legs_active -eq 0 20 || t_fail "idle legs not released"
rss2=$(rss_kib "$UP_PID")
t_log "worker RSS: ${rss0} KiB idle, ${rss1} KiB with $((2 * K)) legs, ${rss2} KiB after release"

# ---- 2./3. throughput and latency ------------------------------------------------
# stats STAMPS_SENDER STAMPS_RECEIVER -> "MB/s p50_us p99_us"
stats() {
    python3 - "$1" "$2" "$LAT_N" "$THR_MIB" <<'PY'
import sys
s, r = {}, {}
for path, d in ((sys.argv[1], s), (sys.argv[2], r)):
    for line in open(path):
        k, m, t = line.split()
        d[int(m)] = int(t)
lat_n, thr = int(sys.argv[3]), int(sys.argv[4])
lat = sorted(r[m] - s[m] for m in range(lat_n))
big = range(lat_n, lat_n + thr)
missing = [m for m in list(range(lat_n)) + list(big) if m not in r or m not in s]
if missing:
    sys.exit("messages without stamps: %s" % missing[:5])
span = max(r[m] for m in big) - min(s[m] for m in big)
mbs = thr * 1048576 / (span / 1e9) / 1e6
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0
print("%.1f %.1f %.1f" % (mbs, pct(0.50), pct(0.99)))
PY
}

# socat first, between the same programs.
ports=$(t_free_ports 2)
read -r SOCAT_PORT X2_PORT <<<"$ports"
X2_PATH="msrp://127.0.0.1:$X2_PORT/direct$RANDOM;tcp"
t_spawn xpeer2 "$T_PEER_BIN" --listen "127.0.0.1:$X2_PORT" --local-path "$X2_PATH" \
    --no-path-check "${EXPECT[@]}" --stamps "$T_DIR/socat.r" --timeout-ms $PEER_MS
t_wait_listen "$X2_PORT" tcp 5 || t_fail "xpeer2 does not listen"
read -r -a socat_opts <<<"${MSRP_BENCH_SOCAT_OPTS:-}"
t_spawn socat socat "${socat_opts[@]}" "TCP-LISTEN:$SOCAT_PORT,reuseaddr,bind=127.0.0.1" "TCP:127.0.0.1:$X2_PORT"
t_wait_listen "$SOCAT_PORT" tcp 5 || t_fail "socat does not listen"
t_spawn cpeer2 "$T_PEER_BIN" --connect "msrp://127.0.0.1:$SOCAT_PORT/${X2_PATH##*/}" \
    --local-path "msrp://127.0.0.1:9/clidirect$RANDOM;tcp" --remote-path "$X2_PATH" \
    --no-path-check \
    "${SEND[@]}" --stamps "$T_DIR/socat.s" --wait-close --timeout-ms $PEER_MS
m_peer_wait xpeer2 $((PEER_MS / 1000 + 5))
m_peer_wait cpeer2 20
[[ ${T_RC_OF[xpeer2]} == 0 && ${T_RC_OF[cpeer2]} == 0 ]] ||
    t_fail "socat run: peers exited ${T_RC_OF[cpeer2]}/${T_RC_OF[xpeer2]}"
t_stop socat TERM 2
fig=$(stats "$T_DIR/socat.s" "$T_DIR/socat.r") || t_fail "socat run: no figures from the stamps"
read -r s_mbs s_p50 s_p99 <<<"$fig"


# The worker: the controlling peer closes once it has everything, which
# ends the session (the worker reports the closed leg, the CP BYEs both
# sides); the client peer waits for the worker to close its leg.
relayed0=$(t_metric up-1 imsplit_up_msrp_bytes_relayed_total)
m_paths
m_xpeer xpeer "${EXPECT[@]}" --stamps "$T_DIR/imsplit.r" --timeout-ms $PEER_MS
m_session client_msrp.xml ctrl_msrp.xml $SE
m_cpeer cpeer "${SEND[@]}" --stamps "$T_DIR/imsplit.s" --wait-close --timeout-ms $PEER_MS
m_peer_wait xpeer $((PEER_MS / 1000 + 5))
m_peer_wait cpeer 20
[[ ${T_RC_OF[xpeer]} == 0 && ${T_RC_OF[cpeer]} == 0 ]] ||
    t_fail "imsplit run: peers exited ${T_RC_OF[cpeer]}/${T_RC_OF[xpeer]} (see their summaries above)"
t_expect_sipp_ok uac uas
relayed=$(awk -v a="$(t_metric up-1 imsplit_up_msrp_bytes_relayed_total)" -v b="$relayed0" \
    'BEGIN { printf "%.0f", a - b }')
fig=$(stats "$T_DIR/imsplit.s" "$T_DIR/imsplit.r") || t_fail "imsplit run: no figures from the stamps"
read -r i_mbs i_p50 i_p99 <<<"$fig"

# ---- figures -----------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
per_leg=$(awk -v a="$rss0" -v b="$rss1" -v k="$K" 'BEGIN { printf "%.0f", (b - a) * 1024 / (2 * k) }')
per_sess=$(awk -v a="$cp_rss0" -v b="$cp_rss1" -v k="$K" 'BEGIN { printf "%.0f", (b - a) * 1024 / k }')
echo
note=""
((QUICK)) && note=" (--quick: too small to mean anything)"
echo "MSRP relay bench$note:" \
    "$(nproc) CPUs, loopback, build $IMSPLIT_BUILD_DIR"
echo "  throughput: $THR_MIB x 1 MiB one way in 64 KiB chunks, window 32;" \
    "latency: $LAT_N x 1 KiB, one per ms"
printf '  %-20s %12s %16s %14s\n' "" imsplit-up "socat${MSRP_BENCH_SOCAT_OPTS:+ $MSRP_BENCH_SOCAT_OPTS}" imsplit/socat
printf '  %-20s %12s %16s %14s\n' "throughput (MB/s)" "$i_mbs" "$s_mbs" "$(ratio "$i_mbs" "$s_mbs")"
printf '  %-20s %12s %16s %14s\n' "latency p50 (us)" "$i_p50" "$s_p50" "$(ratio "$i_p50" "$s_p50")"
printf '  %-20s %12s %16s %14s\n' "latency p99 (us)" "$i_p99" "$s_p99" "$(ratio "$i_p99" "$s_p99")"
echo "  worker relayed $relayed MSRP bytes for $((THR_MIB * MIB + LAT_N * 1024)) body bytes"
echo "  idle legs: worker RSS ${rss0} KiB -> ${rss1} KiB with $((2 * K)) legs" \
    "($K sessions, no connections) -> $per_leg bytes/leg (target < 8192);" \
    "${rss2} KiB after release"
echo "  (for information, the CP meanwhile: RSS ${cp_rss0} KiB -> ${cp_rss1} KiB," \
    "$per_sess bytes/session, SIP transactions included)"
echo

t_finish
