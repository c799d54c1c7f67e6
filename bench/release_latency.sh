#!/usr/bin/env bash
# Release latency benchmark: from the final response to a BYE arriving at
# the CP to the leg freed on the worker, with 1 and 4 workers; and release
# commands acked per second.
#
#   bench/release_latency.sh [--quick]
#
# Builds nothing: takes the binaries from IMSPLIT_BUILD_DIR (default
# build/). Everything on 127.0.0.1, SIP over TCP, one stack per run; every
# stack is checked for leftovers (sessions in the CP, legs, sockets,
# buffers on the workers) when it stops. Prints figures, never passes or
# fails on them; it fails only if a run breaks (a daemon dies, sipp calls
# fail, something is left over).
#
# Each run: sipp sets N sessions up (bench/sip/storm_client.xml with a long
# SE, bench/sip/rel_ctrl.xml answering "Session-Expires: SE;refresher=uas")
# and nobody refreshes, so the CP ends every session when its controlling
# leg's timer runs out: BYE on both legs, and on the final response to each
# BYE a ReleaseLeg for that direction to the session's worker. Two modes,
# each with K = 1 and K = 4 workers (--quick, only to prove the bench
# runs: paced with 1 worker, burst with 4, calls lingering 1 s instead of
# 3 s after their last message):
#  - paced: N sessions (default 1000, --quick 40) set up at R/s (default
#    200, --quick 100), so they expire at R/s and the 2N releases come 2R
#    per second, each BYE answered at once: the latency of the release
#    path when it is not queued behind other releases;
#  - burst: N sessions (default 2000, --quick 40); both sipps are held
#    (SIGSTOP) from before the first expiry until the CP has sent every
#    BYE, then resumed, so all 2N BYE answers arrive at once and the
#    release path runs flat out (as in bench/workers.sh): releases acked
#    per second, and the latency of releases that queue. The 2N answers
#    arrive back to back on two TCP connections, so the CP's SIP receive
#    (docs/performance.md, "Expiry storm") takes part in this rate.
#
# How it measures: every log line of both daemons carries mono_us=,
# CLOCK_MONOTONIC in microseconds, which Linux keeps system-wide, so the
# CP's and the workers' stamps compare directly. Per direction of each
# session:
#  - t_resp: the CP's event=bye_completed, logged in the NTA callback for
#    the BYE's final response, before the session acts on it;
#  - t_sent: the CP's event=release_sent, logged once the ReleaseLeg is
#    queued on the control socket;
#  - t_freed: the worker's event=leg_released, logged as the worker takes
#    the leg out, just before it closes the leg's sockets and frees it
#    (microseconds, no waiting, in between);
#  - t_acked: the CP's event=leg_usage, logged when the ReleaseLegResult is
#    in.
# Release latency = t_freed - t_resp (target: p99 < 1 ms with one worker);
# also printed: t_acked - t_resp, the split t_sent - t_resp (CP) and
# t_freed - t_sent (ZeroMQ and the worker), and the CP's own histogram
# imsplit_cp_release_latency_seconds (first send of the ReleaseLeg to its
# result; upper bound of the bucket holding p99). Releases acked per second
# = acked releases / (last t_acked - first t_sent), as in bench/workers.sh.
# "wait" is the time the CP's and the workers' loop threads were ready to
# run but had no CPU during the releases (/proc/PID/schedstat): how much
# the other processes on the 2 cores got in the way.
#
# With BENCH_REL_SCHED=1 (root, perf), every run also records the
# scheduler's switches and wake-ups (perf record -e sched:sched_switch -e
# sched:sched_wakeup -a -k CLOCK_MONOTONIC, the clock of the mono_us
# stamps) and prints the on-CPU release latency: resp->freed minus the time
# the threads on the release's path were runnable but had no CPU (the CP's
# loop thread from t_resp to t_sent; the CP's ZeroMQ I/O thread and the
# threads of the worker that freed the leg from t_sent to t_freed). On a
# shared 2-core machine that separates the release path's own latency from
# the time other processes held both cores.
#
# Environment: BENCH_REL_PACED (N paced, 10..5000), BENCH_REL_BURST (N
# burst, 10..10000), BENCH_REL_RATE (paced set-up rate, 20..1000),
# BENCH_REL_SCHED (0 or 1).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export IMSPLIT_SRC_DIR=$SRC
export IMSPLIT_BUILD_DIR=${IMSPLIT_BUILD_DIR:-$SRC/build}
BENCH_SIP=$SRC/bench/sip

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

source "$SRC/bench/bench_lib.sh"

# Sum of run_delay_ns over the CP and every worker.
stack_wait_ns() {
    local total=0 name
    for name in cp "${T_UP_NAMES[@]}"; do
        total=$((total + $(run_delay_ns "${T_PID_OF[$name]}")))
    done
    echo "$total"
}

# ---- one stack per run: the script runs itself with --case -----------------

# rel_case MODE K N RATE OUT LINGER_MS: appends one line of figures to OUT.
rel_case() {
    local mode=$1 k=$2 n=$3 rate=$4 out=$5 linger_ms=$6
    T_WORKERS=$k
    T_TRANSPORT=tcp
    T_SIPP_TRACE_MSG=0
    source "$SRC/tests/lib/lib.sh"
    t_init "bench_release_${mode}_k$k"
    # Every session is up before the first one expires: the set-up is
    # planned at RATE, and the SE leaves room for it to run at half that.
    local se
    se=$(awk -v n="$n" -v r="$rate" 'BEGIN { s = int(1.5 * (2 * n / r + 2)) + 1; if (s < 4) s = 4; print s }')
    # The CP's own heartbeat defaults: no more control traffic than in
    # service.
    # A burst wants every BYE out while the sipps are held: the BYE window
    # (--bye-window, 256 by default, which paces session ends in service)
    # is opened to all of them.
    local -a window=()
    [[ $mode == burst ]] && window=(--bye-window $((2 * n)))
    t_start_stack --session-expires 3600 --min-se 1 --heartbeat-ms 1000 --liveness 3 \
        --log-level info "${window[@]}"
    local t0
    t0=$(t_now)
    # Both scenarios keep each call open 3 s after its last message (see
    # their comments); LINGER_MS, when another, replaces that pause.
    local -a xml
    mapfile -t xml < <(bench_linger "$T_DIR" "$linger_ms" rel_ctrl storm_client)
    ((${#xml[@]} == 2)) || t_fail "cannot set the scenarios' final pause"
    local uas_xml=${xml[0]} uac_xml=${xml[1]}
    # sipp's own time limit (lib.sh: 120 s) leaves no room for a slow burst.
    t_sipp_uas uas "$uas_xml" -key se "$se" -m "$n" -timeout 300s
    t_sipp_uac uac "$uac_xml" -key se 3600 -m "$n" -l "$n" -r "$rate" -rp 1000 \
        -timeout 300s
    local i answered=0
    for ((i = 0; i < se * 10; i++)); do
        answered=$(grep -c ' event=session_answered ' "$T_DIR/cp.log" || true)
        ((answered >= n)) && break
        t_check_daemons
        sleep 0.1
    done
    ((answered >= n)) || t_fail "only $answered of $n sessions set up"
    local first_due
    first_due=$(awk -v t="$t0" -v se="$se" -v now="$(t_now)" 'BEGIN { printf "%.0f", (t + se * 2 / 3 - now) * 1000 }')
    ((first_due > 300)) || t_fail "set-up too slow: the first session expires in $first_due ms"
    sleep 0.2 # the last ACKs
    local wait0 sched_pid=""
    wait0=$(stack_wait_ns)
    if [[ ${BENCH_REL_SCHED:-0} == 1 ]]; then
        perf record -q -e sched:sched_switch -e sched:sched_wakeup -a -k CLOCK_MONOTONIC \
            -o "$T_DIR/sched.data" >"$T_DIR/perf.log" 2>&1 &
        sched_pid=$!
    fi
    if [[ $mode == burst ]]; then
        t_kill uac STOP
        t_kill uas STOP
        t_wait_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq "$n" $((se + 10)) ||
            t_fail "not every session expired"
        t_wait_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq "$n" 5 ||
            t_fail "not every session expired"
        t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 0
        sleep 0.2
        t_kill uac CONT
        t_kill uas CONT
    fi
    # Bounds with room for a CP that takes its time over a burst of SIP
    # over TCP (docs/performance.md, "Expiry storm").
    t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq "$n" $((se + 90)) ||
        t_fail "not every client direction was released"
    t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq "$n" 30 ||
        t_fail "not every controlling direction was released"
    t_wait_metric cp imsplit_cp_releases_pending -eq 0 30 || t_fail "releases still pending"
    local wait_ms
    wait_ms=$(awk -v a="$wait0" -v b="$(stack_wait_ns)" 'BEGIN { printf "%.0f", (b - a) / 1e6 }')
    # Every switch of the CP's and the workers' threads, with the state
    # each left the CPU in, for the on-CPU latency below.
    local pids=() name
    if [[ -n $sched_pid ]]; then
        kill -INT "$sched_pid" 2>/dev/null || true
        wait "$sched_pid" 2>/dev/null || true
        for name in cp "${T_UP_NAMES[@]}"; do pids+=("$name=${T_PID_OF[$name]}"); done
        local list
        list=$(printf '%s\n' "${pids[@]}" | cut -d= -f2 | paste -sd,)
        perf sched timehist -i "$T_DIR/sched.data" -p "$list" --state >"$T_DIR/sched.txt" 2>/dev/null ||
            t_fail "perf sched timehist failed"
        rm -f -- "$T_DIR/sched.data"
    fi
    t_metrics_body cp >"$T_DIR/cp.metrics"
    t_sipp_wait uac 30
    t_sipp_wait uas 30
    t_expect_sipp_ok uac uas
    t_finish
    python3 - "$T_DIR" "$mode" "$k" "$n" "$wait_ms" "${pids[@]}" >>"$out" <<'PY'
import math, os, re, sys
d, mode, k, n, wait_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
pid_of = dict(a.split("=") for a in sys.argv[6:])
workers = sorted(w for w in os.listdir(d) if re.fullmatch(r"up-\d+\.log", w))
FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')

def events(path):
    for line in open(path, encoding="utf-8", errors="replace"):
        f = dict(FIELD.findall(line))
        if "event" in f and "mono_us" in f:
            yield f

resp, sent, acked, freed = {}, {}, {}, {}
for f in events(d + "/cp.log"):
    ev, t = f["event"], int(f["mono_us"])
    if ev == "bye_completed":
        resp[(f["sid"], f["leg"])] = t
    elif ev == "release_sent":
        sent[(f["sid"], f["direction"])] = t
    elif ev == "leg_usage" and f.get("status") == "ok":
        acked[(f["sid"], f["dir"])] = t
freed_by = {}
for w in workers:
    for f in events("%s/%s" % (d, w)):
        if f["event"] == "leg_released":
            freed[(f["sid"], f["dir"])] = int(f["mono_us"])
            freed_by[(f["sid"], f["dir"])] = w[:-4]
keys = [x for x in resp if x in sent and x in freed and x in acked]
if len(keys) != 2 * n:
    sys.exit("expected %d released directions with every stamp, found %d" % (2 * n, len(keys)))

def pct(v, q):
    return v[max(0, min(len(v) - 1, math.ceil(q * len(v)) - 1))]

def stats(a, b):
    v = sorted((b[x] - a[x]) / 1000.0 for x in keys)
    return "%.3f/%.3f/%.3f" % (pct(v, 0.5), pct(v, 0.99), v[-1])

buckets, hsum, hcount = [], 0.0, 0.0
for line in open(d + "/cp.metrics", encoding="utf-8"):
    m = re.match(r'imsplit_cp_release_latency_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
    if m:
        buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
total = buckets[-1][1] if buckets else 0
hist_p99 = next((le for le, c in buckets if c >= 0.99 * total), None) if total else None
secs = (max(acked[x] for x in keys) - min(sent[x] for x in keys)) / 1e6

# On-CPU latency (BENCH_REL_SCHED=1): resp->freed minus the time the
# threads it passed through were runnable but had no CPU: the CP's loop
# thread from resp to sent; the CP's other threads (ZeroMQ I/O) and every
# thread of the worker that freed the leg from sent to freed. Runnable
# spans: from a wake-up to the switch-in (sch delay), and from a
# preemption (left in state R) to the next switch-in.
on_cpu = "-"
if pid_of and os.path.exists(d + "/sched.txt"):
    spans = {}  # (pid, main thread?) -> [(start, end)] in seconds
    last_state = {}
    for line in open(d + "/sched.txt", encoding="utf-8", errors="replace"):
        p = line.split()
        if len(p) < 7 or not re.fullmatch(r"\d+\.\d+", p[0]):
            continue
        m = re.search(r"\[(\d+)(?:/(\d+))?\]$", p[2])
        if not m or p[2].startswith("MHD"):
            continue  # the metrics server's thread is on no release's path
        tid, pid = m.group(1), m.group(2) or m.group(1)
        t, wait, delay, run, state = float(p[0]), float(p[-4]) / 1e3, float(p[-3]) / 1e3, float(p[-2]) / 1e3, p[-1]
        start = t - run
        key = (pid, tid == pid)
        if delay > 0:
            spans.setdefault(key, []).append((start - delay, start))
        if last_state.get(tid) == "R" and wait > 0:
            spans.setdefault(key, []).append((start - wait, start))
        last_state[tid] = state

    def covered(ivs, a, b):
        segs = sorted((max(a, x), min(b, y)) for x, y in ivs if min(b, y) > max(a, x))
        total, cur = 0.0, None
        for x, y in segs:
            if cur and x <= cur[1]:
                cur = (cur[0], max(cur[1], y))
            else:
                total += cur[1] - cur[0] if cur else 0
                cur = (x, y)
        return total + (cur[1] - cur[0] if cur else 0)

    cp = pid_of["cp"]
    lo = min(min(x for _, x in v) for v in spans.values()) if spans else 0
    hi = max(max(y for _, y in v) for v in spans.values()) if spans else 0
    v = []
    for x in keys:
        a, s, b = resp[x] / 1e6, sent[x] / 1e6, freed[x] / 1e6
        if not (lo < a and b < hi):
            continue  # outside the trace
        s = min(s, b)
        up = pid_of[freed_by[x]]
        w = covered(spans.get((cp, True), []), a, s) + covered(
            spans.get((cp, False), []) + spans.get((up, True), []) + spans.get((up, False), []), s, b)
        v.append(max(0.0, b - a - w) * 1000)
    if v:
        v.sort()
        on_cpu = "%.3f/%.3f/%.3f" % (pct(v, 0.5), pct(v, 0.99), v[-1])
print("%s %d %d %d %s %s %s %s %s %.3f %.0f %d %s" % (
    mode, k, n, len(keys), stats(resp, freed), stats(resp, acked), stats(resp, sent),
    stats(sent, freed), "%g" % (hist_p99 * 1000) if hist_p99 is not None else "n/a",
    secs, len(keys) / secs if secs > 0 else 0, wait_ms, on_cpu))
PY
}

case ${1:-} in
    --case)
        rel_case "$2" "$3" "$4" "$5" "$6" "$7"
        exit 0
        ;;
esac

# ---- the benchmark -----------------------------------------------------------

bench_quick_args "$@"
if ((QUICK)); then
    NP=${BENCH_REL_PACED:-40} NB=${BENCH_REL_BURST:-40} RATE=${BENCH_REL_RATE:-100} LINGER_MS=1000
else
    NP=${BENCH_REL_PACED:-1000} NB=${BENCH_REL_BURST:-2000} RATE=${BENCH_REL_RATE:-200} LINGER_MS=3000
fi
in_range() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3)); }
in_range "$NP" 10 5000 || { echo "BENCH_REL_PACED out of 10..5000" >&2; exit 64; }
in_range "$NB" 10 10000 || { echo "BENCH_REL_BURST out of 10..10000" >&2; exit 64; }
in_range "$RATE" 20 1000 || { echo "BENCH_REL_RATE out of 20..1000" >&2; exit 64; }
case ${BENCH_REL_SCHED:-0} in
    0) ;;
    1) command -v perf >/dev/null || { echo "BENCH_REL_SCHED=1 needs perf (linux-perf)" >&2; exit 64; } ;;
    *) echo "BENCH_REL_SCHED is 0 or 1" >&2; exit 64 ;;
esac

OUT=$(mktemp -d "${TMPDIR:-/tmp}/imsplit-bench-release.XXXXXX")
trap 'rm -rf -- "$OUT"' EXIT

load=$(cut -d' ' -f1-3 /proc/loadavg)
# A run that breaks is reported (its log's end, then its FAIL line) and
# the others still run; the bench then exits 1.
broken=0
for mode in paced burst; do
    for k in 1 4; do
        # --quick: one run per mode, paced with 1 worker, burst with 4.
        if ((QUICK)) && [[ $mode/$k != paced/1 && $mode/$k != burst/4 ]]; then
            continue
        fi
        if [[ $mode == paced ]]; then n=$NP rate=$RATE; else n=$NB rate=$((NB > 1000 ? 1000 : NB)); fi
        echo "== release latency ($mode): $n sessions, $k worker(s)"
        log=$OUT/rel_${mode}_k$k.log
        if ! bash "$0" --case "$mode" "$k" "$n" "$rate" "$OUT/rel" "$LINGER_MS" >"$log" 2>&1; then
            broken=1
            tail -n 40 "$log" >&2
            why=$(grep -h -m 1 ': FAIL: ' "$log" | sed 's/.*: FAIL: //') || true
            echo "$mode run with $k workers failed: ${why:-see above}" >&2
            echo "$mode $k BROKEN ${why:-see the log above}" >>"$OUT/rel"
        fi
        grep -E 'PASS|FAIL' "$log" || true
    done
done

echo
note=""
((QUICK)) && note=" (--quick: small, indicative only)"
echo "Release latency$note: $(nproc) CPUs, loopback, SIP over TCP, build $IMSPLIT_BUILD_DIR"
echo "load average before the runs: $load"
echo
fmt='  %-5s %2s %8s %21s %23s %19s %21s %8s %8s %6s %19s\n'
# shellcheck disable=SC2059
printf "$fmt" mode K releases "resp->freed ms" "resp->acked ms" "resp->sent ms" "sent->freed ms" \
    "hist p99" "acked/s" "wait" "on-CPU resp->freed"
# shellcheck disable=SC2059
printf "$fmt" "" "" "" p50/p99/max p50/p99/max "(CP) p50/p99/max" p50/p99/max ms "" ms p50/p99/max
while read -r mode k n rest; do
    if [[ $n == BROKEN ]]; then
        printf '  %-5s %2s  run broke: %s\n' "$mode" "$k" "$rest"
        continue
    fi
    read -r rel freed ackd cpu xfer hp99 _ per_s wait oncpu <<<"$rest"
    # shellcheck disable=SC2059
    printf "$fmt" "$mode" "$k" "$rel" "$freed" "$ackd" "$cpu" "$xfer" "<=$hp99" "$per_s" "$wait" "$oncpu"
done <"$OUT/rel"
echo
echo "  resp: the BYE's final response at the CP (event=bye_completed); freed: the worker"
echo "    takes the leg out (event=leg_released); acked: the CP has the ReleaseLegResult"
echo "    (event=leg_usage); sent: the CP has queued the ReleaseLeg (event=release_sent)."
echo "    All mono_us stamps (CLOCK_MONOTONIC, us). Target: resp->freed p99 < 1 ms, 1 worker."
echo "  hist p99: the CP's imsplit_cp_release_latency_seconds (ReleaseLeg sent -> result),"
echo "    upper bound of the bucket holding p99."
echo "  acked/s: acked releases / (last acked - first sent)."
echo "  wait: time the CP's and the workers' loop threads were ready to run but had no"
echo "    CPU, during the releases (/proc/PID/schedstat)."
echo "  on-CPU resp->freed (BENCH_REL_SCHED=1, perf sched): resp->freed minus the time the"
echo "    threads on the release's path were ready to run but had no CPU."
echo "  paced: set up at $RATE/s, so releases come at $((2 * RATE))/s, each alone; burst: every"
echo "    BYE answer at once (sipps held with SIGSTOP until all BYEs were sent)."
echo
echo "command: IMSPLIT_BUILD_DIR=$IMSPLIT_BUILD_DIR BENCH_REL_PACED=$NP BENCH_REL_BURST=$NB" \
    "BENCH_REL_RATE=$RATE BENCH_REL_SCHED=${BENCH_REL_SCHED:-0} $0$( ((QUICK)) && echo " --quick")"
exit "$broken"
