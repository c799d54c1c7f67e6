#!/usr/bin/env bash
# Concurrent timed sessions: memory per session and per leg, and CPU at
# rest, of imsplit (imsplit-cp and its workers) holding N refreshed
# sessions, against the same N through a reference measured in the same
# run: Kamailio with dialog + sst session timers and the media anchored
# on rtpengine (bench/ref/).
#
#   bench/sessions.sh [--quick] [N...]
#
# N: sessions held at once, each 10..200000 (default 10000 50000 100000;
# --quick: 20; also BENCH_SESSIONS="N..."). --quick is a small run only to
# prove the bench works: SE 10, settle 1 s, window 2 s, and a hold with no
# room for recognising a set-up that ends with failed sessions (step 3),
# which fails the run there anyway. Builds nothing: takes the binaries
# from IMSPLIT_BUILD_DIR (default build/); installs Kamailio, rtpengine
# and sipp when missing (root). Everything on 127.0.0.1. Prints
# figures, never passes or fails on them; it fails only if a run breaks:
# a daemon dies, a session is not set up or fails (sipp reports every
# call), or imsplit is left with a session or a leg at the end.
#
# For each N, one stack at a time (imsplit: one CP, BENCH_WORKERS workers,
# default 2; then the reference), fresh processes each, SIP over UDP:
#  1. Baseline: RSS and PSS (/proc/PID/smaps_rollup) of every daemon.
#  2. sipp (bench/sip/held_uac.xml, held_uas.xml) sets up N sessions at
#     N / R per second, R being the refresh interval, so that set-up
#     spreads over one refresh interval and the refreshes afterwards come
#     at the steady rate N sessions make, N / R per second. Each offers
#     "Session-Expires: SE" (default SE 300, --quick 10, BENCH_SE; the
#     CP runs with --session-expires SE and a Min-SE of at most SE, the
#     reference with the same Min-SE) and refreshes it with UPDATE every
#     R = 2 SE / 5 seconds, before SE/2 as RFC 4028 asks. The controlling
#     side answers "refresher=uac": behind imsplit the CP refreshes the
#     controlling leg itself (every SE/2), behind Kamailio the caller's
#     UPDATEs pass through. Media: the MSRP offer of tests/sip for
#     imsplit, one audio section for the reference (rtpengine does not
#     anchor MSRP; see bench/setup_rate.sh and docs/performance.md).
#  3. Once all N are up (imsplit_cp_sessions_active = N and
#     imsplit_up_legs_active = 2N; Kamailio's active dialogs = N and
#     rtpengine's calls = N), the script waits SETTLE seconds (default 35:
#     the set-up INVITE transactions are gone, SIP keeps a server
#     transaction 32 s) and samples memory: per session the CP's RSS
#     delta / N (and its heap in use, imsplit_cp_heap_bytes, delta / N),
#     per leg the workers' RSS delta / 2N; for the reference
#     the PSS delta summed over all Kamailio processes / N (they share
#     one shared-memory segment: PSS counts each shared page once over
#     all of them, where RSS would count it once per process), Kamailio's
#     own count of shared memory in use / N, and rtpengine's RSS delta /
#     N. The system-wide Slab delta / N is printed too (kernel memory:
#     rtpengine's sockets live there; indicative only, since everything
#     else on the machine moves it). Sessions that fail during set-up
#     never come up: once the planned set-up time is over and 99.9 % of N
#     have been up (with their legs) for 5 s, the figures are taken over
#     those, the table notes it, and the run counts as broken.
#  4. CPU at rest: utime + stime (/proc/PID/stat, all threads and all
#     processes of a daemon) over WINDOW seconds (default 10) while the
#     sessions are held and only refreshes run, as % of one CPU; printed
#     with the refreshes seen in that window.
#  5. Each session's caller hangs up (BYE) H seconds after its 200, H
#     chosen so that every session is up through the measurement and
#     refreshed at least once. The script waits for every call, then
#     checks nothing is left: imsplit_cp_sessions_active = 0,
#     imsplit_up_legs_active = 0 (and sockets, buffers, pending releases:
#     the lib.sh leak check), and that the daemons exit cleanly; for the
#     reference, active dialogs and rtpengine calls = 0 (a warning only).
#
# Descriptors: the script raises its soft limit to the hard limit for
# itself and what it starts. sipp and Kamailio use one UDP socket each and
# imsplit none per session, but rtpengine binds four UDP ports per call,
# so bench/ref/ref.sh starts one rtpengine per ~4000 calls when the hard
# limit is 20000 (see there); a deployment of rtpengine needs LimitNOFILE
# above 4 x calls.
#
# Environment: BENCH_SESSIONS, BENCH_SE, BENCH_SETTLE_S, BENCH_WINDOW_S,
# BENCH_MAX_RATE (highest set-up rate, default 3000/s), BENCH_WORKERS,
# BENCH_CP_LOG_LEVEL (default warn), BENCH_STACKS (default "imsplit ref"),
# BENCH_SIP_TRANSPORT (udp, default, or tcp: imsplit only; sipp then keeps
# one TCP connection on each side),
# and the REF_* of bench/ref/ref.sh.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export IMSPLIT_SRC_DIR=$SRC
export IMSPLIT_BUILD_DIR=${IMSPLIT_BUILD_DIR:-$SRC/build}
BENCH_SIP=$SRC/bench/sip

# ---- one stack and one N per run: the script runs itself with --case -----------

# case_run STACK N SE SETTLE WINDOW MARGIN OUT LATE: appends "key=value"
# lines to OUT. LATE: seconds the hold leaves for the end of a set-up with
# failed sessions to be recognised (40; --quick 0).
case_run() {
    local stack=$1 n=$2 se=$3 settle=$4 window=$5 margin=$6 out=$7 late=$8
    source "$SRC/bench/ref/ref.sh"
    T_WORKERS=${BENCH_WORKERS:-2}
    T_SIPP_TRACE_MSG=0
    T_UP_ARGS=(--log-level warn --capacity $((2 * n + 1000)))
    source "$SRC/tests/lib/lib.sh"
    t_init "bench_sessions_${stack}_$n"
    ref_trap_exit
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

    local refresh_s=$((se * 2 / 5))
    local max_rate=${BENCH_MAX_RATE:-3000}
    local rate=$(((n + refresh_s - 1) / refresh_s))
    ((rate < 20)) && rate=20
    ((rate > max_rate)) && rate=$max_rate
    local setup_s=$(((n + rate - 1) / rate))
    # The first session is answered at about 0 and must stay up until the
    # window is over: set-up (planned, plus a quarter, plus LATE, the 40 s
    # the end of a set-up with failed sessions takes to recognise), settle,
    # window, margin.
    local hold_s=$((setup_s * 5 / 4 + late + settle + window + margin))
    local refreshes=$((hold_s / refresh_s))
    ((refreshes >= 1)) || refreshes=1
    local tail_ms=$((hold_s * 1000 - refreshes * refresh_s * 1000))
    ((tail_ms >= 1000)) || tail_ms=1000
    local min_se=$((se < 90 ? se / 2 : 90))
    local wait_ms=$(((se + 60) * 1000))
    local bound=$((setup_s * 2 + hold_s + 120))

    local media=msrp
    [[ $stack == ref ]] && media=audio
    # SIP transport: UDP, or for imsplit TCP on request (BENCH_SIP_TRANSPORT):
    # over TCP a server transaction ends with its answer, over UDP it stays
    # 64*T1 = 32 s to absorb retransmissions, with its request and answer.
    local sip_tp=udp sipp_tp=u1
    if [[ $stack == imsplit && ${BENCH_SIP_TRANSPORT:-udp} == tcp ]]; then
        sip_tp=tcp sipp_tp=t1
    fi
    local uac_xml uas_xml
    uac_xml=$(t_scenario "$BENCH_SIP/held_uac.xml" "OFFER=$(cat "$BENCH_SIP/media_${media}_offer.sdp")" \
        "REFRESH_MS=$((refresh_s * 1000))" "REFRESHES=$refreshes" "TAIL_MS=$tail_ms")
    uas_xml=$(t_scenario "$BENCH_SIP/held_uas.xml" "ANSWER=$(cat "$BENCH_SIP/media_${media}_answer.sdp")" \
        "WAIT_MS=$wait_ms")

    local uas_port uac_port target
    local -a sip_pids media_pids
    if [[ $stack == imsplit ]]; then
        T_TRANSPORT=$sip_tp
        t_start_stack --session-expires "$se" --min-se "$min_se" --max-sessions $((n + n / 10 + 100)) \
            --max-pending $((n + 100)) \
            --heartbeat-ms 1000 --liveness 3 --log-level "${BENCH_CP_LOG_LEVEL:-warn}"
        uas_port=$T_UAS_PORT uac_port=$T_UAC_PORT target=127.0.0.1:$T_SIP_PORT
        sip_pids=("${T_PID_OF[cp]}")
        local name
        media_pids=()
        for name in "${T_UP_NAMES[@]}"; do media_pids+=("${T_PID_OF[$name]}"); done
    else
        local ports
        ports=$(ref_free_udp_ports 2)
        read -r uas_port uac_port <<<"$ports"
        ref_start "$T_DIR/ref" "sip:127.0.0.1:$uas_port" "$min_se" "$n" || t_fail "the reference did not start"
        target=127.0.0.1:$REF_SIP_PORT
        sip_pids=("${REF_KAM_PIDS[@]}")
        media_pids=("${REF_RTP_PIDS[@]}")
    fi

    check_daemons() {
        if [[ $stack == imsplit ]]; then
            t_check_daemons
        else
            ref_alive || t_fail "a reference process died (logs in $REF_DIR)"
        fi
    }
    # "sessions legs": imsplit: CP sessions, worker legs; reference:
    # Kamailio's active dialogs, rtpengine's calls.
    active() {
        if [[ $stack == imsplit ]]; then
            echo "$(t_metric cp imsplit_cp_sessions_active) $(t_metric_up_sum imsplit_up_legs_active)"
        else
            echo "$(ref_kam_stat dialog:active_dialogs) $(ref_rtp_sessions)"
        fi
    }
    # Refreshes so far: "from the client, sent by the daemon itself".
    refreshes_so_far() {
        if [[ $stack == imsplit ]]; then
            echo "$(t_metric cp imsplit_cp_refreshes_received_total) $(t_metric cp imsplit_cp_refreshes_sent_total)"
        else
            echo "$(ref_kam_stat core:rcv_requests_update) 0"
        fi
    }
    slab_kb() { awk '$1 == "Slab:" { print $2 }' /proc/meminfo; }
    shm_used() { if [[ $stack == ref ]]; then ref_kam_shm_used; else echo 0; fi; }
    # The CP's memory in use by its own count: the heap in use as malloc
    # sees it plus the sessions' slab, mapped outside the heap
    # (imsplit_cp_session_store_bytes; docs/performance.md).
    heap_bytes() {
        local v=0 w=0
        if [[ $stack == imsplit ]]; then
            v=$(t_metric cp 'imsplit_cp_heap_bytes{state="in_use"}')
            w=$(t_metric cp 'imsplit_cp_session_store_bytes')
        fi
        [[ $v =~ ^[0-9.e+]+$ ]] || v=0
        [[ $w =~ ^[0-9.e+]+$ ]] || w=0
        awk -v a="$v" -v b="$w" 'BEGIN { printf "%.0f\n", a + b }'
    }

    # The daemons settle before the baseline: 2 s, or 1 s when the settle
    # time itself is shorter (--quick).
    sleep $((settle < 2 ? 1 : 2))
    local mem0_sip mem0_media slab0 shm0
    mem0_sip=$(ref_proc_mem "${sip_pids[@]}")
    mem0_media=$(ref_proc_mem "${media_pids[@]}")
    slab0=$(slab_kb)
    shm0=$(shm_used)
    local heap0 heap1
    heap0=$(heap_bytes)

    # One UDP socket per sipp (-t u1), 4 MiB socket buffers, a global
    # timeout that fails sipp if the run overstays its plan.
    local -a sipp_common=(-i 127.0.0.1 -t "$sipp_tp" -nostdin -buff_size 4194304
        -key se "$se" -timeout "${bound}s" -timeout_error)
    t_spawn uas "$SIPP" -sf "$uas_xml" -p "$uas_port" "${sipp_common[@]}" -m "$n" -l $((n + 1000)) \
        -trace_err -error_file "$T_DIR/uas.err"
    t_wait_listen "$uas_port" "$sip_tp" 10 || t_fail "sipp uas does not listen on $uas_port"
    local t_start
    t_start=$(t_now)
    t_spawn uac "$SIPP" -sf "$uac_xml" -p "$uac_port" "${sipp_common[@]}" -m "$n" -l $((n + 1000)) \
        -r "$rate" -rp 1000 -trace_err -error_file "$T_DIR/uac.err" "$target"
    t_log "$stack: $n sessions at $rate/s, SE $se, refresh every ${refresh_s}s ($refreshes x), BYE after ${hold_s}s"

    # All up: bounded by twice the planned set-up time. A session that
    # failed during set-up (the daemon ended it, sipp counts a failed call)
    # never comes up: once the planned set-up time is over, 99.9 % of N
    # steady for 5 s with their legs is taken as the end of set-up, the
    # figures are computed over the sessions that are up, and the run is
    # reported broken at the end.
    local i a up_at="" limit=$((setup_s * 2 + 60)) n_up=$n prev="" steady=0 s0=$SECONDS
    local per_leg=2 s_now l_now
    [[ $stack == ref ]] && per_leg=1
    for ((i = 0; SECONDS - s0 < limit; i++)); do
        a=$(active)
        ((i % 15)) || t_log "set-up: '$a' (sessions, legs) after $((SECONDS - s0))s"
        [[ $a == "$n $((per_leg * n))" ]] && { up_at=$(t_now); break; }
        read -r s_now l_now <<<"$a"
        if [[ $a == "$prev" ]]; then steady=$((steady + 1)); else steady=0; fi
        prev=$a
        if ((SECONDS - s0 > setup_s + 30 && steady >= 5)) &&
            [[ $s_now =~ ^[0-9]+$ && $l_now =~ ^[0-9]+$ ]] &&
            ((s_now >= n - n / 1000 && l_now == per_leg * s_now)); then
            n_up=$s_now
            up_at=$(t_now)
            t_log "set-up over with $n_up of $n sessions up: $((n - n_up)) failed"
            break
        fi
        check_daemons
        t_alive "${T_PID_OF[uac]}" || t_fail "sipp uac ended during set-up (active: $a)"
        sleep 1
    done
    [[ -n $up_at ]] || t_fail "$n sessions were not all up after ${limit}s (active: $a)"
    # The window must end before the first caller hangs up: with 5 s to
    # spare (MARGIN - 2 when the margin is smaller, --quick).
    local spare=$((margin - 2 < 5 ? margin - 2 : 5))
    ((SECONDS - s0 < hold_s - settle - window - spare)) ||
        t_fail "set-up took $((SECONDS - s0))s, too long for sessions held ${hold_s}s"
    local setup_took
    setup_took=$(awk -v a="$t_start" -v b="$up_at" 'BEGIN { printf "%.1f", b - a }')
    t_log "all $n_up up after ${setup_took}s; settling ${settle}s"
    for ((i = 0; i < settle; i++)); do
        check_daemons
        sleep 1
    done

    local mem1_sip mem1_media slab1 shm1
    mem1_sip=$(ref_proc_mem "${sip_pids[@]}")
    mem1_media=$(ref_proc_mem "${media_pids[@]}")
    slab1=$(slab_kb)
    shm1=$(shm_used)
    heap1=$(heap_bytes)

    local hz c0_sip c0_media c1_sip c1_media r0 r1 w0 w1
    hz=$(getconf CLK_TCK)
    r0=$(refreshes_so_far)
    w0=$(t_now)
    c0_sip=$(ref_proc_ticks "${sip_pids[@]}")
    c0_media=$(ref_proc_ticks "${media_pids[@]}")
    sleep "$window"
    c1_sip=$(ref_proc_ticks "${sip_pids[@]}")
    c1_media=$(ref_proc_ticks "${media_pids[@]}")
    w1=$(t_now)
    r1=$(refreshes_so_far)
    a=$(active)
    check_daemons
    local want="$n_up $((per_leg * n_up))"
    [[ $a == "$want" ]] || t_fail "sessions ended during the measurement (active: $a, expected $want)"
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    local -a fig=("$out" "$stack" "$n_up" "$mem0_sip" "$mem1_sip" "$mem0_media" "$mem1_media" "$slab0" "$slab1"
        "$shm0" "$shm1" "$c0_sip" "$c1_sip" "$c0_media" "$c1_media" "$w0" "$w1" "$(getconf CLK_TCK)" "$r0" "$r1"
        "$rate" "$setup_took" "$se" "$refresh_s" "$hold_s" "${#media_pids[@]}" "$n" "$heap0" "$heap1")

    t_log "measured; waiting for the callers to hang up"
    t_sipp_wait uac "$bound"
    t_sipp_wait uas 60
    ((n_up < n)) || t_expect_sipp_ok uac uas
    local left="0 0"
    if [[ $stack == imsplit ]]; then
        # The callers are done once their BYEs are answered; the CP then
        # still ends the controlling legs and has the worker release every
        # direction. Give that time (bounded) before the leak check.
        for ((i = 0; i < 120; i++)); do
            left=$(active)
            [[ $left == "0 0" && $(t_metric cp imsplit_cp_releases_pending) == 0 ]] && break
            check_daemons
            sleep 0.5
        done
        t_log "after the callers hung up: '$left' (sessions, legs) after $((i / 2)) s"
        t_finish
    else
        for ((i = 0; i < 50; i++)); do
            left=$(active)
            [[ $left == "0 0" ]] && break
            check_daemons
            sleep 0.2
        done
        [[ $left == "0 0" ]] || t_log "the reference still holds '$left' (dialogs, rtpengine calls)"
        ref_stop
        T_DONE=1
    fi

    python3 - "${fig[@]}" "$left" "$load" <<'PY'
import sys
(out, stack, n, m0s, m1s, m0m, m1m, slab0, slab1, shm0, shm1, c0s, c1s, c0m, c1m, w0, w1, hz,
 r0, r1, rate, setup, se, refresh, hold, nmedia, asked, heap0, heap1, left, load) = sys.argv[1:]
n = int(n)
rss0s, pss0s = map(int, m0s.split()); rss1s, pss1s = map(int, m1s.split())
rss0m, pss0m = map(int, m0m.split()); rss1m, pss1m = map(int, m1m.split())
secs = float(w1) - float(w0)
hz = float(hz)
rc0, rs0 = (int(float(x)) for x in r0.split()); rc1, rs1 = (int(float(x)) for x in r1.split())
v = {
    "stack": stack, "n": asked, "up": n, "rate": rate, "setup_s": setup, "se": se, "refresh_s": refresh, "hold_s": hold,
    "media_procs": nmedia,
    "sip_rss_kb0": rss0s, "sip_rss_kb1": rss1s, "sip_pss_kb0": pss0s, "sip_pss_kb1": pss1s,
    "media_rss_kb0": rss0m, "media_rss_kb1": rss1m, "media_pss_kb0": pss0m, "media_pss_kb1": pss1m,
    "sip_rss_b": (rss1s - rss0s) * 1024.0 / n, "sip_pss_b": (pss1s - pss0s) * 1024.0 / n,
    "media_rss_b": (rss1m - rss0m) * 1024.0 / n, "media_pss_b": (pss1m - pss0m) * 1024.0 / n,
    "shm_b": (int(shm1) - int(shm0)) / n,
    "heap_b": (float(heap1) - float(heap0)) / n,
    "slab_b": (int(slab1) - int(slab0)) * 1024.0 / n,
    "cpu_sip_pct": (int(c1s) - int(c0s)) / hz / secs * 100,
    "cpu_media_pct": (int(c1m) - int(c0m)) / hz / secs * 100,
    "window_s": secs,
    "refresh_in_per_s": (rc1 - rc0) / secs, "refresh_out_per_s": (rs1 - rs0) / secs,
    "left": left.replace(" ", "/"), "load": load,
}
with open(out, "a") as f:
    f.write(" ".join("%s=%s" % (k, ("%.1f" % x) if isinstance(x, float) else x) for k, x in v.items()) + "\n")
PY
    ((n_up == n)) || t_fail "$((n - n_up)) of $n sessions failed during set-up (figures are over the $n_up up)"
    [[ $stack == imsplit ]] || t_log "PASS"
}

case ${1:-} in
    --case)
        shift
        case_run "$@"
        exit 0
        ;;
esac

# ---- the benchmark -----------------------------------------------------------

source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
QUICK=0
SIZES=()
for a in "$@"; do
    case $a in
        --quick) QUICK=1 ;;
        -h | --help) bench_help; exit 0 ;;
        [0-9]*) SIZES+=("$a") ;;
        *) echo "usage: $0 [--quick] [N...]" >&2; exit 64 ;;
    esac
done
if ((${#SIZES[@]} == 0)); then
    if ((QUICK)); then
        read -r -a SIZES <<<"${BENCH_SESSIONS:-20}"
    else
        read -r -a SIZES <<<"${BENCH_SESSIONS:-10000 50000 100000}"
    fi
fi
if ((QUICK)); then
    SE=${BENCH_SE:-10} SETTLE=${BENCH_SETTLE_S:-1} WINDOW=${BENCH_WINDOW_S:-2} MARGIN=4 LATE=0
else
    SE=${BENCH_SE:-300} SETTLE=${BENCH_SETTLE_S:-35} WINDOW=${BENCH_WINDOW_S:-10} MARGIN=20 LATE=40
fi
for n in "${SIZES[@]}"; do
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 10 && n <= 200000)) || { echo "N must be 10..200000, not '$n'" >&2; exit 64; }
done
((SE >= 10 && SE <= 3600)) || { echo "BENCH_SE out of 10..3600" >&2; exit 64; }
((SETTLE >= 0 && SETTLE <= 300 && WINDOW >= 1 && WINDOW <= 120)) ||
    { echo "BENCH_SETTLE_S out of 0..300 or BENCH_WINDOW_S out of 1..120" >&2; exit 64; }
STACKS=${BENCH_STACKS:-imsplit ref}
CMDLINE="IMSPLIT_BUILD_DIR=$IMSPLIT_BUILD_DIR $0${1:+ $*}"

source "$SRC/bench/ref/ref.sh"
ref_install

OUT=$(mktemp -d "${TMPDIR:-/tmp}/imsplit-bench-sessions.XXXXXX")
trap 'rm -rf -- "$OUT"' EXIT

# A run that breaks ends the benchmark; the figures of the runs before it
# are still printed.
BROKEN=""
for n in "${SIZES[@]}"; do
    for stack in $STACKS; do
        echo "== $n sessions: $stack"
        before=0
        [[ -f $OUT/figures ]] && before=$(wc -l <"$OUT/figures")
        if ! bash "$0" --case "$stack" "$n" "$SE" "$SETTLE" "$WINDOW" "$MARGIN" "$OUT/figures" "$LATE" \
            >"$OUT/$stack-$n.log" 2>&1; then
            tail -n 60 "$OUT/$stack-$n.log" >&2
            grep -E 'FAIL|set-up|hung up' "$OUT/$stack-$n.log" | tail -n 20 >&2
            BROKEN+="${BROKEN:+; }$stack run with $n sessions failed"
            echo "$stack run with $n sessions failed" >&2
            # Sessions that failed during set-up still leave figures over
            # the others (noted in the table); anything else ends the runs.
            [[ -f $OUT/figures ]] && (($(wc -l <"$OUT/figures") > before)) || break 2
        fi
        grep -E 'PASS|FAIL|all .* up after|ref: kamailio' "$OUT/$stack-$n.log" || true
    done
done
[[ -s $OUT/figures ]] || exit 1

python3 - "$OUT/figures" "$QUICK" "$(nproc)" "$IMSPLIT_BUILD_DIR" "$CMDLINE" <<'PY'
import sys
path, quick, ncpu, build, cmd = sys.argv[1:]
rows = []
for line in open(path):
    d = dict(kv.split("=", 1) for kv in line.split())
    rows.append(d)
get = lambda s, n: next((r for r in rows if r["stack"] == s and r["n"] == n), None)
f = lambda d, k: float(d[k])
sizes = []
for r in rows:
    if r["n"] not in sizes:
        sizes.append(r["n"])
note = " (--quick: small, indicative only)" if quick == "1" else ""
r0 = rows[0]
print()
print("Concurrent timed sessions%s: %s CPUs, loopback, build %s" % (note, ncpu, build))
print("  SIP over UDP; Session-Expires %s s, the caller refreshes with UPDATE every %s s,"
      % (r0["se"], r0["refresh_s"]))
print("  set-up at N/%s per second; memory after all N are up and %s; CPU over the window."
      % (r0["refresh_s"], "a settle time"))
print("  imsplit: imsplit-cp + workers, MSRP (2 legs per session on the workers);")
print("  reference: Kamailio 5.6 (dialog + sst) + rtpengine (userspace, audio anchored).")
print()
print("  Memory (bytes per session unless said otherwise; deltas from before set-up)")
print("  %-8s %7s %10s %10s %13s %18s %10s %12s" % ("stack", "N", "SIP RSS", "SIP PSS", "SIP heap/shm",
      "media RSS", "total", "kernel slab"))
for n in sizes:
    for s in ("imsplit", "ref"):
        d = get(s, n)
        if not d:
            continue
        if s == "imsplit":
            sip = f(d, "sip_rss_b")
            media = "%.0f (/leg %.0f)" % (f(d, "media_rss_b"), f(d, "media_rss_b") / 2)
            total = sip + f(d, "media_rss_b")
            shm = "heap %.0f" % f(d, "heap_b") if "heap_b" in d else "-"
        else:
            sip = f(d, "sip_pss_b")
            media = "%.0f" % f(d, "media_rss_b")
            total = sip + f(d, "media_rss_b")
            shm = "%.0f" % f(d, "shm_b")
        print("  %-8s %7s %10.0f %10.0f %13s %18s %10.0f %12.0f" % (s, n, f(d, "sip_rss_b"), f(d, "sip_pss_b"),
              shm, media, total, f(d, "slab_b")))
print("  SIP: imsplit-cp / all Kamailio processes (RSS counts Kamailio's shared memory once per")
print("  process, PSS once in all); SIP heap/shm: imsplit-cp's heap in use (malloc's count,")
print("  imsplit_cp_heap_bytes) + its session store (imsplit_cp_session_store_bytes),")
print("  Kamailio's shared memory in use (its own count);")
print("  media: the workers (per session = 2 legs) / rtpengine; total: SIP (imsplit RSS,")
print("  Kamailio PSS) + media RSS; kernel slab: system-wide, indicative only.")
print()
print("  CPU at rest (% of one CPU over the window, sessions held, only refreshes running)")
print("  %-8s %7s %8s %8s %8s %10s %13s %13s %6s" % ("stack", "N", "SIP %", "media %", "total %",
      "us/sess/s", "refreshes/s", "own refr./s", "load"))
for n in sizes:
    for s in ("imsplit", "ref"):
        d = get(s, n)
        if not d:
            continue
        tot = f(d, "cpu_sip_pct") + f(d, "cpu_media_pct")
        print("  %-8s %7s %8.1f %8.1f %8.1f %10.2f %13.0f %13.0f %6s" % (s, n, f(d, "cpu_sip_pct"),
              f(d, "cpu_media_pct"), tot, tot / 100.0 * 1e6 / int(d.get("up", n)), f(d, "refresh_in_per_s"),
              f(d, "refresh_out_per_s"), d["load"]))
print("  refreshes/s: the callers' UPDATEs the daemon received in the window; own refr./s:")
print("  UPDATEs imsplit-cp sent itself on the controlling legs; us/sess/s: CPU microseconds")
print("  per session per second; load: 1-minute load average of the machine at the end.")
print()
print("  Ratios imsplit / reference")
for n in sizes:
    a, b = get("imsplit", n), get("ref", n)
    if not a or not b:
        continue
    ma = f(a, "sip_rss_b") + f(a, "media_rss_b")
    mb = f(b, "sip_pss_b") + f(b, "media_rss_b")
    ca = f(a, "cpu_sip_pct") + f(a, "cpu_media_pct")
    cb = f(b, "cpu_sip_pct") + f(b, "cpu_media_pct")
    print("  N %7s: memory per session %s, CPU at rest %s" % (n,
          "%.2f" % (ma / mb) if mb > 0 else "n/a", "%.2f" % (ca / cb) if cb > 0 else "n/a"))
for r in rows:
    if r.get("up", r["n"]) != r["n"]:
        print("  note: %s at N=%s: %d sessions failed during set-up; its figures are over the %s up"
              % (r["stack"], r["n"], int(r["n"]) - int(r["up"]), r["up"]))
    if r.get("left", "0/0") != "0/0":
        print("  note: %s at N=%s still held %s (dialogs/rtpengine calls) at the end" % (r["stack"], r["n"], r["left"]))
print()
print("  setup: " + "; ".join("%s N=%s %s/s in %s s" % (r["stack"], r["n"], r["rate"], r["setup_s"]) for r in rows))
print("  rtpengine instances: " + ", ".join("N=%s: %s" % (r["n"], r["media_procs"]) for r in rows if r["stack"] == "ref"))
print()
print("  command: " + cmd)
PY
if [[ -n $BROKEN ]]; then
    echo "  BROKEN: $BROKEN (see above); the figures are those of the runs before it" >&2
    exit 1
fi
