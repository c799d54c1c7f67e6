#!/usr/bin/env bash
# Expiry storm benchmark: N sessions whose session timers all expire within
# the same second; how late the CP sends their BYEs, and how long until
# every direction of every session is released on the worker and acked.
#
#   bench/expiry_storm.sh [--quick]
#
# Builds nothing: takes the binaries from IMSPLIT_BUILD_DIR (default
# build/). Everything on 127.0.0.1, one stack per size and transport;
# every stack is checked for leftovers (sessions in the CP, legs, sockets,
# buffers on the workers) when it stops. Prints figures, never passes or
# fails on them; it fails only if a run breaks (a daemon dies, sipp calls
# fail, the sessions do not all end, something is left over, no session
# expired and was released; with --quick, a session that ended otherwise).
#
# Per size N (default 2500, 5000 and 10000, the cost-growth table;
# --quick, only to prove the bench runs: 100, with calls lingering 1 s
# instead of 3 s after their last message) and per SIP transport (default
# UDP; TCP on request, see docs/performance.md for why not by default),
# one CP with its default heartbeats (1 s, 3 missed: a loop stalled for
# 3 s loses its workers) and W workers (default 1):
#  1. sipp sets the N sessions up at R per second (bench/sip/storm_*.xml).
#     The client asks for a long Session-Expires (3600 s) and never
#     refreshes; the controlling side answers each INVITE with
#     "Session-Expires: S;refresher=uas" and never refreshes either, S
#     chosen per call from the time the INVITE arrives so that the
#     controlling leg's timer, which the CP arms when the 200 arrives and
#     fires S - min(32, S/3) = 2S/3 s later, runs out in the last 2/3 s
#     before one instant planned after the set-up. So the expiries are
#     packed into about 0.7 s whatever the set-up rate.
#  2. The CP ends each session: BYE on both legs, and on each BYE's 200 a
#     ReleaseLeg for that direction; sipp answers every BYE at once.
#  3. Figures, from the CP's and the workers' logs (every line carries
#     mono_us=, CLOCK_MONOTONIC in microseconds) and the CP's /metrics,
#     over the sessions that expired (a session that ended otherwise,
#     e.g. lost in a UDP set-up, is counted by cause instead):
#     - ideal expiry of a session: the mono_us of its event=session_answered
#       (logged just after both timers are armed) + SE - min(32, SE/3) of
#       the leg that runs out first (the controlling leg here);
#     - BYE lateness: event=bye_sent (both legs) - ideal expiry; median,
#       p99, max over the 2N BYEs (target: p99 < 50 ms);
#     - storm: first event=session_timer_expired to the last
#       event=leg_usage (the CP has the worker's ReleaseLeg result, i.e.
#       the direction is released and acked): target 2 s for 10,000;
#     - release lag per direction: its event=leg_usage - ideal expiry
#       (p50/p99/max);
#     - timer lateness p99 as the CP's own histogram reports it
#       (imsplit_cp_timer_lateness_seconds: fired - armed deadline, upper
#       bucket bound);
#     - CPU seconds each process used from 1 s before the planned expiry
#       to the end of the storm (/proc/PID/stat, 10 ms ticks), CP CPU per
#       session (the cost-growth column), and how long the CP's loop
#       thread waited for a CPU meanwhile (/proc/PID/schedstat);
#     - UDP: datagrams the kernel dropped on a full receive buffer, at the
#       CP's SIP socket and at the sipps (/proc/net/udp).
#
# A run also stops (and counts as broken) when the CP's RSS passes
# BENCH_STORM_MAX_RSS_MB (default 4096): a storm of BYE answers over TCP
# has grown it by gigabytes (docs/performance.md).
#
# Environment: BENCH_STORM_SIZES (space-separated N, each 10..20000),
# BENCH_STORM_TRANSPORTS ("udp", "tcp" or both), BENCH_STORM_WORKERS
# (W, 1..4, default 1), BENCH_STORM_RATE (R, set-up calls per second,
# default 500; the planned expiry instant leaves time for the set-up to
# run at 2/3 of it), BENCH_STORM_PERF (a path P: record the CP with
# `perf record --call-graph dwarf` over the same window as the CPU
# figures, into P.<transport>.N; then `perf report -i P.<transport>.N`),
# BENCH_STORM_CP_ARGS (extra imsplit-cp flags, e.g. "--bye-window 1024").
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export IMSPLIT_SRC_DIR=$SRC
export IMSPLIT_BUILD_DIR=${IMSPLIT_BUILD_DIR:-$SRC/build}
BENCH_SIP=$SRC/bench/sip

# sipp keeps one TCP connection, the CP a few; the limit is raised for
# whatever a larger run needs, for this script's own processes only.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

source "$SRC/bench/bench_lib.sh"

# ---- one stack per size and transport: the script runs itself with --case ---

# storm_case N W R TRANSPORT OUT LINGER_MS: appends one line of figures
# for N sessions to OUT.
storm_case() {
    local n=$1 w=$2 rate=$3 tp=$4 out=$5 linger_ms=$6
    T_WORKERS=$w
    T_TRANSPORT=$tp
    T_SIPP_TRACE_MSG=0
    source "$SRC/tests/lib/lib.sh"
    t_init "bench_expiry_storm_${tp}_$n"
    # The CP's own heartbeat defaults (lib.sh's are shorter): a loop that
    # stalls longer than 3 s loses its workers, as it would in service.
    # shellcheck disable=SC2086 # BENCH_STORM_CP_ARGS is a list of flags
    t_start_stack --session-expires 3600 --min-se 1 --heartbeat-ms 1000 --liveness 3 \
        --log-level info ${BENCH_STORM_CP_ARGS:-}
    # The expiries are planned after the set-up at 2/3 of the asked rate,
    # plus 3 s (the main part checks that this keeps every SE within the
    # SE/3 branch of the guard, SE <= 96).
    local t0 expire_at
    t0=$(t_now)
    expire_at=$(awk -v t="$t0" -v n="$n" -v r="$rate" 'BEGIN { printf "%.3f", t + 1.5 * n / r + 3 }')
    # Over UDP a storm of BYEs would overflow sipp's default 64 KiB socket
    # buffers, and what is lost comes again only 0.5 s later. What the CP
    # loses comes again too: a retransmitted 200 gets a second ACK, which
    # sipp takes for an unexpected message; it must not abort the call.
    # sipp's own time limit (lib.sh: 120 s) leaves no room for a slow storm.
    local -a sipp_opts=(-buff_size 4194304 -timeout 400s)
    [[ $tp == udp ]] && sipp_opts+=(-default_behaviors "all,-abortunexp")
    # Both scenarios keep each call open 3 s after its last message (see
    # their comments); LINGER_MS, when another, replaces that pause.
    local -a xml
    mapfile -t xml < <(bench_linger "$T_DIR" "$linger_ms" storm_ctrl storm_client)
    ((${#xml[@]} == 2)) || t_fail "cannot set the scenarios' final pause"
    local uas_xml=${xml[0]} uac_xml=${xml[1]}
    t_sipp_uas uas "$uas_xml" -key expire_at "$expire_at" -m "$n" "${sipp_opts[@]}"
    t_sipp_uac uac "$uac_xml" -key se 3600 -m "$n" -l "$n" -r "$rate" -rp 1000 \
        "${sipp_opts[@]}"
    # Stay off the CP until just before the storm, then take the CPU
    # counters of every process.
    local wait_s
    wait_s=$(awk -v a="$expire_at" -v now="$(t_now)" 'BEGIN { d = a - 1.0 - now; printf "%.3f", (d > 0 ? d : 0) }')
    sleep "$wait_s"
    t_check_daemons
    local -A cpu0=()
    local name
    for name in cp "${T_UP_NAMES[@]}" uac uas; do cpu0[$name]=$(cpu_ticks "${T_PID_OF[$name]}"); done
    local perf_pid=""
    if [[ -n ${BENCH_STORM_PERF:-} ]]; then
        perf record -q --call-graph dwarf -F 499 -o "$BENCH_STORM_PERF.$tp.$n" -p "$T_CP_PID" >"$T_DIR/perf.log" 2>&1 &
        perf_pid=$!
    fi
    local wait0
    wait0=$(run_delay_ns "$T_CP_PID")
    # Until every session is closed and every release acked, whatever
    # ended it (a session lost in set-up ends before the storm). One scrape
    # per poll, 5 per second: the poller shares the CPUs.
    local i done="" state="" total active pending rss_mb peak_rss_mb=0
    local max_rss_mb=${BENCH_STORM_MAX_RSS_MB:-4096}
    for ((i = 0; i < 750; i++)); do
        state=$(t_metrics_body cp | awk '
            $1 == "imsplit_cp_sessions_total" { t = $2 }
            $1 == "imsplit_cp_sessions_active" { a = $2 }
            $1 == "imsplit_cp_releases_pending" { p = $2 }
            END { printf "%d %d %d", t, (a == "" ? -1 : a), (p == "" ? -1 : p) }') || true
        read -r total active pending <<<"$state"
        if ((${total:-0} >= n && ${active:--1} == 0 && ${pending:--1} == 0)); then
            done=1
            break
        fi
        t_check_daemons
        rss_mb=$(awk '$1 == "VmRSS:" { printf "%d", $2 / 1024 }' "/proc/$T_CP_PID/status" 2>/dev/null) || rss_mb=0
        ((${rss_mb:-0} > peak_rss_mb)) && peak_rss_mb=$rss_mb
        if ((${rss_mb:-0} > max_rss_mb)); then
            t_fail "the CP's RSS reached ${rss_mb} MB (limit ${max_rss_mb} MB, BENCH_STORM_MAX_RSS_MB); stopped before it exhausts the machine's memory"
        fi
        sleep 0.2
    done
    [[ -n $done ]] || t_fail "the storm did not end within 150 s (sessions created, active, releases pending: $state)"
    local -A cpu1=()
    for name in cp "${T_UP_NAMES[@]}" uac uas; do cpu1[$name]=$(cpu_ticks "${T_PID_OF[$name]}"); done
    # A sipp whose calls all ended before the storm was over (their BYEs
    # answered long before the CP read the answers) has no counters left.
    local sipp_gone=0
    t_alive "${T_PID_OF[uac]}" && t_alive "${T_PID_OF[uas]}" || sipp_gone=1
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
    local cp_wait_ms
    cp_wait_ms=$(awk -v a="$wait0" -v b="$(run_delay_ns "$T_CP_PID")" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
    t_metrics_body cp >"$T_DIR/cp.metrics"
    # Datagrams the kernel dropped because a socket's receive buffer was
    # full: the CP's SIP port and the two sipps (UDP only).
    local drops=-
    if [[ $tp == udp ]]; then
        drops=$(awk -v ports="$T_SIP_PORT $T_UAC_PORT $T_UAS_PORT" '
            BEGIN { split(ports, p, " "); for (i in p) want[sprintf("%04X", p[i])] = i }
            NR > 1 { split($2, a, ":"); if (a[2] in want) d[want[a[2]]] += $NF }
            END { printf "%d/%d", d[1], d[2] + d[3] }' /proc/net/udp)
    fi
    t_sipp_wait uac 30
    t_sipp_wait uas 30
    t_expect_sipp_ok uac uas
    t_finish
    local hz up_cpu=0 sipp_cpu
    hz=$(getconf CLK_TCK)
    for name in "${T_UP_NAMES[@]}"; do up_cpu=$((up_cpu + cpu1[$name] - cpu0[$name])); done
    sipp_cpu=$((cpu1[uac] - cpu0[uac] + cpu1[uas] - cpu0[uas]))
    ((sipp_gone)) && sipp_cpu=-1
    python3 - "$T_DIR" "$n" "$w" "$rate" "$hz" \
        "$((cpu1[cp] - cpu0[cp]))" "$up_cpu" "$sipp_cpu" "$cp_wait_ms" "$tp" "$drops" "$peak_rss_mb" \
        >>"$out" <<'PY'
import math, re, sys
d, n, w, rate, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cpu_cp, cpu_up, cpu_sipp = (int(x) / hz for x in sys.argv[6:9])
cpu_sipp = "%.2f" % cpu_sipp if cpu_sipp >= 0 else "n/a"
cp_wait_ms, tp, drops, peak_rss = int(sys.argv[9]), sys.argv[10], sys.argv[11], sys.argv[12]
FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')

def events(path):
    for line in open(path, encoding="utf-8", errors="replace"):
        f = dict(FIELD.findall(line))
        if "event" in f and "mono_us" in f:
            yield f

def expire_after_us(se):
    ms = se * 1000
    return (ms - min(32000, ms // 3)) * 1000

ideal, answered, expired, bye, acked, causes = {}, [], {}, {}, {}, {}
for f in events(d + "/cp.log"):
    ev, t = f["event"], int(f["mono_us"])
    if ev == "session_answered":
        answered.append(t)
        due = [expire_after_us(int(f[leg + "_se"])) for leg in ("client", "controlling")
               if f.get(leg + "_role") == "peer" and int(f.get(leg + "_se", 0)) > 0]
        if due:
            ideal[f["sid"]] = t + min(due)
    elif ev == "session_timer_expired":
        expired[f["sid"]] = t
    elif ev == "bye_sent":
        bye[(f["sid"], f["leg"])] = t
    elif ev == "leg_usage" and f.get("status") == "ok":
        acked[(f["sid"], f["dir"])] = t
    elif ev == "session_closed":
        causes[f["cause"]] = causes.get(f["cause"], 0) + 1
# The storm is the sessions that ended by their timer and were released in
# both directions through their BYEs' answers; any other end (a session
# lost in set-up, a worker declared lost) is counted by cause instead.
storm = [s for s in expired if s in ideal and all((s, x) in bye and (s, x) in acked
                                                  for x in ("client", "controlling"))]
if not storm:
    sys.exit("no session expired and was released")
other = ",".join("%s:%d" % kv for kv in sorted(causes.items()) if kv[0] != "session_timer_expired")
incomplete = len(expired) - len(storm)
if incomplete:
    other += ("," if other else "") + "expired_not_released:%d" % incomplete

def pct(v, q):
    v = sorted(v)
    return v[max(0, min(len(v) - 1, math.ceil(q * len(v)) - 1))]

pairs = [(s, x) for s in storm for x in ("client", "controlling")]
late = [(bye[k] - ideal[k[0]]) / 1000.0 for k in pairs]
lag = [(acked[k] - ideal[k[0]]) / 1000.0 for k in pairs]
ideals = [ideal[s] for s in storm]
fired = [expired[s] for s in storm]
# The CP's timer lateness histogram: upper bound of the bucket holding p99.
buckets = []
for line in open(d + "/cp.metrics", encoding="utf-8"):
    m = re.match(r'imsplit_cp_timer_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
    if m:
        buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
total = buckets[-1][1] if buckets else 0
hist_p99 = next((le for le, c in buckets if c >= 0.99 * total), float("nan")) if total else float("nan")
storm_s = (max(acked[k] for k in pairs) - min(fired)) / 1e6
# Set-up still running when the storm began?
overlap = "yes" if max(answered) > min(fired) else "no"
print("%s %d %d %d %d %.0f %.0f %.3f %.1f %.1f %.1f %s %.1f %.1f %.1f %.2f %.2f %s %.1f %d %s %s %s %s" % (
    tp, n, len(storm), w, rate,
    (max(ideals) - min(ideals)) / 1000.0, (max(fired) - min(fired)) / 1000.0, storm_s,
    pct(late, 0.5), pct(late, 0.99), max(late),
    ("%g" % (hist_p99 * 1000)) if hist_p99 == hist_p99 else "n/a",
    pct(lag, 0.5), pct(lag, 0.99), max(lag),
    cpu_cp, cpu_up, cpu_sipp, cpu_cp * 1e6 / len(storm), cp_wait_ms, drops, peak_rss, overlap,
    other or "-"))
PY
}

case ${1:-} in
    --case)
        storm_case "$2" "$3" "$4" "$5" "$6" "$7"
        exit 0
        ;;
esac

# ---- the benchmark -----------------------------------------------------------

bench_quick_args "$@"
if ((QUICK)); then
    SIZES=${BENCH_STORM_SIZES:-100} LINGER_MS=1000
else
    SIZES=${BENCH_STORM_SIZES:-2500 5000 10000} LINGER_MS=3000
fi
TRANSPORTS=${BENCH_STORM_TRANSPORTS:-udp}
W=${BENCH_STORM_WORKERS:-1}
RATE=${BENCH_STORM_RATE:-500}
for n in $SIZES; do
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 10 && n <= 20000)) ||
        { echo "BENCH_STORM_SIZES: each size in 10..20000" >&2; exit 64; }
done
for tp in $TRANSPORTS; do
    [[ $tp == udp || $tp == tcp ]] || { echo "BENCH_STORM_TRANSPORTS: udp and/or tcp" >&2; exit 64; }
done
[[ $W =~ ^[1-4]$ ]] || { echo "BENCH_STORM_WORKERS out of 1..4" >&2; exit 64; }
[[ ${BENCH_STORM_MAX_RSS_MB:-4096} =~ ^[0-9]+$ ]] ||
    { echo "BENCH_STORM_MAX_RSS_MB is a number of MB" >&2; exit 64; }
[[ $RATE =~ ^[0-9]+$ ]] && ((RATE >= 50 && RATE <= 5000)) ||
    { echo "BENCH_STORM_RATE out of 50..5000" >&2; exit 64; }
# The controlling leg's SE is 1.5 x (time to the planned expiry) and must
# stay within the SE/3 branch of the guard (SE <= 96).
for n in $SIZES; do
    awk -v n="$n" -v r="$RATE" 'BEGIN { exit !(1.5 * (1.5 * n / r + 3) <= 96) }' ||
        { echo "$n sessions at $RATE/s: set-up too long for SE <= 96; raise BENCH_STORM_RATE" >&2; exit 64; }
done

OUT=$(mktemp -d "${TMPDIR:-/tmp}/imsplit-bench-storm.XXXXXX")
trap 'rm -rf -- "$OUT"' EXIT

load=$(cut -d' ' -f1-3 /proc/loadavg)
# A run that breaks is reported (its log's end, then its FAIL line) and
# the others still run; the bench then exits 1.
broken=0
for tp in $TRANSPORTS; do
    for n in $SIZES; do
        echo "== expiry storm: $n sessions, SIP over $tp, $W worker(s), set-up at $RATE/s"
        log=$OUT/storm_${tp}_$n.log
        if ! bash "$0" --case "$n" "$W" "$RATE" "$tp" "$OUT/storm" "$LINGER_MS" >"$log" 2>&1; then
            broken=1
            tail -n 40 "$log" >&2
            why=$(grep -h -m 1 ': FAIL: ' "$log" | sed 's/.*: FAIL: //') || true
            echo "storm run with $n sessions over $tp failed: ${why:-see above}" >&2
            echo "$tp $n BROKEN ${why:-see the log above}" >>"$OUT/storm"
        fi
        grep -E 'PASS|FAIL' "$log" || true
    done
done

echo
note=""
((QUICK)) && note=" (--quick: small, indicative only)"
echo "Expiry storm$note: $(nproc) CPUs, loopback, $W worker(s), build $IMSPLIT_BUILD_DIR"
echo "load average before the runs: $load"
echo
fmt='  %-3s %11s %6s %6s %7s %19s %6s %21s %15s %6s %6s %9s %6s  %s\n'
# shellcheck disable=SC2059
printf "$fmt" SIP "sessions" ideal expiry storm "BYE lateness ms" timer "release lag ms" "CPU s" "cp us" "cp" "UDP" "cp" "ended"
# shellcheck disable=SC2059
printf "$fmt" "" "expired/N" "spr ms" "spr ms" s p50/p99/max "p99ms" p50/p99/max cp/up/sipp /sess "wait" "drops" "RSS MB" "otherwise"
while read -r tp n ns rest; do
    if [[ $ns == BROKEN ]]; then
        printf '  %-3s %11s  run broke: %s\n' "$tp" "$n" "$rest"
        continue
    fi
    read -r w rate ispr espr storm lp50 lp99 lmax hp99 gp50 gp99 gmax ccp cup csipp cps cwait drops rss overlap \
        other <<<"$rest"
    [[ $overlap == yes ]] && other+=" (set-up overlapped the storm)"
    # shellcheck disable=SC2059
    printf "$fmt" "$tp" "$ns/$n" "$ispr" "$espr" "$storm" "$lp50/$lp99/$lmax" "<=$hp99" "$gp50/$gp99/$gmax" \
        "$ccp/$cup/$csipp" "$cps" "$cwait" "$drops" "$rss" "$other"
done <"$OUT/storm"
echo
echo "  ideal spr: first to last ideal expiry (session_answered + SE - min(32, SE/3));"
echo "  expiry spr: first to last event=session_timer_expired;"
echo "  storm: first expiry to the last direction released and acked (event=leg_usage)"
echo "    (target: 2 s for 10000);"
echo "  BYE lateness: event=bye_sent - ideal expiry, both legs (target: p99 < 50 ms);"
echo "  timer p99ms: the CP's imsplit_cp_timer_lateness_seconds, upper bound of the bucket"
echo "    holding p99;"
echo "  release lag: event=leg_usage - ideal expiry, per direction;"
echo "  CPU s: used from 1 s before the planned expiry to the end of the storm;"
echo "  cp us/sess: CP CPU in that window / N (constant = linear cost);"
echo "  cp wait ms: time the CP's loop thread was ready to run but had no CPU in that window"
echo "    (/proc/PID/schedstat): the sipps, the workers and anything else on the machine"
echo "    had both cores;"
echo "  UDP drops cp/sipp: datagrams dropped on a full socket receive buffer (/proc/net/udp),"
echo "    each one costs a SIP retransmission 0.5 s or more later;"
echo "  cp RSS MB: the CP's peak resident memory during the storm (polled every 0.2 s);"
echo "  ended otherwise: sessions closed by another cause than their timer (session_closed"
echo "    cause=...), e.g. lost in set-up (setup_failed) or their worker declared lost"
echo "    (worker_lost); they are left out of every other column."
echo
echo "command: IMSPLIT_BUILD_DIR=$IMSPLIT_BUILD_DIR BENCH_STORM_SIZES=\"$SIZES\"" \
    "BENCH_STORM_TRANSPORTS=\"$TRANSPORTS\" BENCH_STORM_WORKERS=$W BENCH_STORM_RATE=$RATE" \
    "$0$( ((QUICK)) && echo " --quick")"
# --quick is far below what the CP handles: there every session must have
# expired and been released in the storm, none ended otherwise.
if ((QUICK)); then
    while read -r tp n ns _; do
        [[ $ns == BROKEN || $ns == "$n" ]] && continue
        echo "expiry_storm: BROKEN: --quick: $ns of $n sessions over $tp expired and were released" >&2
        broken=1
    done <"$OUT/storm"
fi
exit "$broken"
