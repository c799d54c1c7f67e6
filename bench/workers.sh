#!/usr/bin/env bash
# Scale-out benchmark: release throughput of an expiry storm with 1, 2 and
# 4 workers, and how long the CP takes to clear the sessions of a worker
# that dies.
#
#   bench/workers.sh [--quick]
#
# Builds nothing: takes the binaries from IMSPLIT_BUILD_DIR (default
# build/). Everything on 127.0.0.1, one stack at a time; every stack is
# checked for leftovers (legs, sockets, buffers, sessions) when it stops.
# Prints figures, never passes or fails on them; it fails only if a run
# breaks (a daemon dies, sipp calls fail, something is left over, a storm
# does not release every direction, the failed worker's sessions are not
# all ended).
#
# --quick is a small run only to prove the bench works: the storm paced
# with 1 worker and in a burst with 4 (no ratio for the burst), N = 50,
# S = 50, calls lingering 1 s (instead of 3) after their last message, the
# surviving worker's clients hanging up 3 s (instead of 8) after set-up.
#
# 1. Expiry storm, for K = 1, 2, 4 workers: sipp sets up N sessions at
#    2N/s (N = 2000) with "Session-Expires: SE" and nobody refreshes, so
#    all of them expire at SE - SE/3 after their 200, within about as
#    long as the setup took. The CP sends both BYEs of each
#    session and, on each BYE's 200, a ReleaseLeg for that direction.
#    Release throughput = ReleaseLeg results (releases acked) per second,
#    from the first `event=release_sent` to the last `event=leg_usage` (the
#    CP logs one per acked release) in the CP log (ms timestamps). Two
#    modes: "paced" (sipp answers each BYE at once, over UDP: the releases
#    follow the expiries) and "burst" (over TCP, both sipps are held with
#    SIGSTOP from before the first expiry until the CP has sent every BYE,
#    then resumed: all 2N answers arrive at once and the release path runs
#    flat out). Also printed: how spread out the expiries were and the
#    CP's own send-to-ack time per release (`ack_ms`), p50/p99. The ratio
#    column compares each K with K=1 of the same mode and run.
# 2. Worker failure: 2 workers, S sessions on each (S = 1000), CP with
#    --heartbeat-ms 200 --liveness 3. One worker is killed (SIGKILL).
#    From the moment of the kill: the CP declares it lost, sends the
#    BYEs of its S sessions (first, last), sipp receives the last BYE
#    on each side, and the CP has closed them all (imsplit-ctl shows the
#    dead worker with 0 sessions; imsplit_cp_sessions_active is down to S).
#    SIP runs over TCP here (see fail_case).
#
# Environment: BENCH_STORM_SESSIONS (N, 10..20000), BENCH_FAIL_SESSIONS
# (S, 10..10000).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export IMSPLIT_SRC_DIR=$SRC
export IMSPLIT_BUILD_DIR=${IMSPLIT_BUILD_DIR:-$SRC/build}
FAULT=$SRC/tests/fault

# ---- one stack per run: the script runs itself with --case -----------------

# storm_case K N MODE OUT LINGER_MS: one expiry storm with K workers;
# appends "MODE K N releases seconds per_s expiry_spread_s setup_s ack_p50
# ack_p99".
# MODE paced: the BYEs are answered as they come, so the releases follow
# the expiries. MODE burst: both sipps are held (SIGSTOP) from before the
# first expiry until every BYE has been sent, so all the answers, and with
# them all the releases, come at once (over TCP, where nothing is lost or
# resent meanwhile).
storm_case() {
    local k=$1 n=$2 mode=$3 out=$4 linger_ms=$5
    T_WORKERS=$k
    T_SIPP_TRACE_MSG=0
    [[ $mode == burst ]] && T_TRANSPORT=tcp
    source "$SRC/tests/lib/lib.sh"
    t_init "bench_storm_${mode}_k$k"
    # Every session must be up before the first expires: setup is planned
    # at 2N/s, and SE leaves room for it to run at a quarter of that.
    local rate=$((2 * n)) se i
    se=$(awk -v n="$n" 'BEGIN { s = int(1.5 * (n / 500.0 + 1.5)) + 1; if (s < 4) s = 4; print s }')
    # A burst wants every BYE out while the sipps are held: the BYE window
    # (--bye-window, 256 by default) is opened to all of them.
    local -a window=()
    [[ $mode == burst ]] && window=(--bye-window $((2 * n)))
    t_start_stack --session-expires "$se" --min-se 1 --log-level info "${window[@]}"
    # sipp exits as soon as its last call is over, and over TCP it drops
    # whatever it still had queued for a peer that reads slower than it
    # writes: in a burst that is the tail of the BYE answers. Each call
    # therefore lingers LINGER_MS (3 s; --quick 1 s) after its last message.
    local scen
    for scen in client_expiry ctrl_expiry; do
        python3 - "$T_SCEN_DIR/$scen.xml" "$T_DIR/$scen.xml" "$linger_ms" <<'PY'
import sys
s = open(sys.argv[1], encoding="utf-8").read()
i = s.index("  <Reference")
open(sys.argv[2], "w", encoding="utf-8").write(
    s[:i] + '  <pause milliseconds="%d"/>\n\n' % int(sys.argv[3]) + s[i:])
PY
    done
    t_sipp_uas uas "$T_DIR/ctrl_expiry.xml" -key se "$se" -m "$n"
    t_sipp_uac uac "$T_DIR/client_expiry.xml" -key se "$se" -m "$n" -l "$n" -r "$rate" -rp 1000
    if [[ $mode == burst ]]; then
        for ((i = 0; i < 400; i++)); do
            (($(t_event_count uac answered) >= n)) && break
            t_check_daemons
            sleep 0.05
        done
        (($(t_event_count uac answered) >= n)) || t_fail "setup of $n sessions did not finish"
        sleep 0.2 # the last ACKs
        local first due
        first=$(t_event uac answered)
        due=$(awk -v f="$first" -v se="$se" -v now="$(t_now)" 'BEGIN { printf "%.0f", (f + se * 2 / 3 - now) * 1000 }')
        ((due > 100)) || t_fail "setup too slow: the first session expires in $due ms"
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
    t_sipp_wait uac $((se + 60))
    t_sipp_wait uas 30
    t_expect_sipp_ok uac uas
    t_wait_metric cp imsplit_cp_releases_pending -eq 0 10 || true
    python3 - "$T_DIR/cp.log" "$T_DIR/uac.events" "$mode" "$k" "$n" >>"$out" <<'PY'
import datetime, re, sys
log, events, mode, k, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def ts(line):
    m = re.search(r"(?:^| )ts=(\S+)", line)
    t = m.group(1).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(t).timestamp()
sent, acked, expired, ack_ms = [], [], [], []
for line in open(log, encoding="utf-8", errors="replace"):
    if " event=release_sent " in line:
        sent.append(ts(line))
    elif " event=leg_usage " in line and " status=ok " in line:
        acked.append(ts(line))
        m = re.search(r" ack_ms=(\d+)", line)
        if m:
            ack_ms.append(int(m.group(1)))
    elif " event=session_timer_expired " in line:
        expired.append(ts(line))
answered = []
for line in open(events, encoding="utf-8", errors="replace"):
    if line.startswith("ev=answered "):
        answered.append(float(line.split()[-1]))
if not sent or not acked:
    sys.exit("no releases in the CP log")
if len(acked) != 2 * n:
    sys.exit("%d releases acked, expected %d (both directions of %d sessions)" % (len(acked), 2 * n, n))
secs = max(acked) - min(sent)
ack_ms.sort()
pct = lambda q: ack_ms[min(len(ack_ms) - 1, int(q * len(ack_ms)))] if ack_ms else -1
print("%s %d %d %d %.3f %.0f %.3f %.3f %d %d" % (
    mode, k, n, len(acked), secs, len(acked) / secs if secs > 0 else 0,
    max(expired) - min(expired) if expired else -1,
    max(answered) - min(answered) if answered else -1, pct(0.5), pct(0.99)))
PY
    t_finish
}

# fail_case S OUT ROOM_MS: 2 workers, S sessions on each, one killed;
# appends "key value_ms" lines.
fail_case() {
    local s=$1 out=$2 room_ms=$3
    T_WORKERS=2
    T_SIPP_TRACE_MSG=0
    # Over UDP the burst of BYEs overflows sipp's receive buffer and the
    # lost ones come again only with SIP retransmissions (0.5, 1, 2, 4 s):
    # that would time sipp, not the CP.
    T_TRANSPORT=tcp
    source "$SRC/tests/lib/lib.sh"
    t_init bench_worker_fail
    local n=$((2 * s)) rate=1000 se=600
    # The clients of the surviving worker hang up on their own once the
    # measurement is over: setup + kill + clearing, with room to spare
    # (ROOM_MS: 8 s; --quick 3 s).
    local hold_ms=$((n * 1000 / rate + room_ms))
    t_start_stack --session-expires $se --min-se 2 --heartbeat-ms 200 --liveness 3
    local uac_xml
    uac_xml=$(t_scenario "$FAULT/client_hold.xml" HOLD_MS=$hold_ms)
    t_sipp_uas uas "$FAULT/ctrl_hold.xml" -key se $se -m "$n"
    t_sipp_uac uac "$uac_xml" -key se $se -m "$n" -l "$n" -r $rate -rp 1000
    t_wait_metric cp imsplit_cp_sessions_active -eq "$n" $((n / rate + 20)) ||
        t_fail "$n sessions never were up"
    t_wait_metric up imsplit_up_legs_active -eq $((2 * n)) 10 || t_fail "legs missing"
    local on2
    on2=$(t_ctl_worker up-2 sessions)
    [[ $on2 =~ ^[0-9]+$ ]] && ((on2 > 0 && on2 < n)) ||
        t_fail "the sessions are not spread over both workers (up-2 holds '$on2' of $n)"
    sleep 0.5
    t_kill up-2 KILL
    local kill_ts=${T_KILL_TS[up-2]} i now ctl_zero="" active_down=""
    # Poll (bounded) what an operator would watch.
    for ((i = 0; i < 1000; i++)); do
        now=$(t_now)
        if [[ -z $active_down ]] && t_cmp "$(t_metric cp imsplit_cp_sessions_active)" -le $((n - on2)); then
            active_down=$now
        fi
        if [[ -z $ctl_zero && $(t_ctl_worker up-2 sessions) == 0 ]]; then
            ctl_zero=$now
        fi
        [[ -n $active_down && -n $ctl_zero ]] && break
        sleep 0.01
    done
    [[ -n $active_down && -n $ctl_zero ]] ||
        t_fail "the killed worker's $on2 sessions were not cleared (active down: ${active_down:-no}, imsplit-ctl 0: ${ctl_zero:-no})"
    for ((i = 0; i < 200; i++)); do
        (($(t_event_count uac bye) >= on2 && $(t_event_count uas bye) >= on2)) && break
        sleep 0.05
    done
    (($(t_event_count uac bye) >= on2 && $(t_event_count uas bye) >= on2)) ||
        t_fail "not every BYE of the killed worker's $on2 sessions reached both sides"
    (($(t_count_log cp event=bye_sent cause=worker_lost) == 2 * on2)) ||
        t_fail "$(t_count_log cp event=bye_sent cause=worker_lost) BYEs sent for the $on2 sessions of the killed worker, expected $((2 * on2))"
    {
        echo "sessions_on_killed $on2"
        echo "sessions_total $n"
        ms() { [[ -n $1 ]] && t_diff_ms "$kill_ts" "$1" || echo n/a; }
        echo "worker_lost $(ms "$(t_log_times cp event=worker_lost worker=up-2 | head -n 1)")"
        echo "first_bye_sent $(ms "$(t_log_times cp event=bye_sent cause=worker_lost | head -n 1)")"
        echo "last_bye_sent $(ms "$(t_log_times cp event=bye_sent cause=worker_lost | tail -n 1)")"
        echo "bye_sent_count $(t_count_log cp event=bye_sent cause=worker_lost)"
        echo "last_bye_client $(ms "$(grep '^ev=bye ' "$T_DIR/uac.events" | awk '{ print $NF }' | sort -n | tail -n 1)")"
        echo "last_bye_controlling $(ms "$(grep '^ev=bye ' "$T_DIR/uas.events" | awk '{ print $NF }' | sort -n | tail -n 1)")"
        echo "last_session_closed $(ms "$(t_log_times cp event=session_closed cause=worker_lost | tail -n 1)")"
        echo "cp_active_down $(ms "$active_down")"
        echo "ctl_sessions_zero $(ms "$ctl_zero")"
    } >>"$out"
    t_expect_sipp_ok uac uas
    t_finish
}

case ${1:-} in
    --case)
        shift
        case $1 in
            storm) storm_case "$2" "$3" "$4" "$5" "$6" ;;
            fail) fail_case "$2" "$3" "$4" ;;
            *) echo "unknown case $1" >&2; exit 64 ;;
        esac
        exit 0
        ;;
esac

# ---- the benchmark -----------------------------------------------------------

source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_quick_args "$@"
if ((QUICK)); then
    N=${BENCH_STORM_SESSIONS:-50} S=${BENCH_FAIL_SESSIONS:-50} LINGER_MS=1000 ROOM_MS=3000
else
    N=${BENCH_STORM_SESSIONS:-2000} S=${BENCH_FAIL_SESSIONS:-1000} LINGER_MS=3000 ROOM_MS=8000
fi
((N >= 10 && N <= 20000)) || { echo "BENCH_STORM_SESSIONS out of 10..20000" >&2; exit 64; }
((S >= 10 && S <= 10000)) || { echo "BENCH_FAIL_SESSIONS out of 10..10000" >&2; exit 64; }

OUT=$(mktemp -d "${TMPDIR:-/tmp}/imsplit-bench-workers.XXXXXX")
trap 'rm -rf -- "$OUT"' EXIT

for mode in paced burst; do
    for k in 1 2 4; do
        # --quick: one run per mode, paced with 1 worker, burst with 4.
        if ((QUICK)) && [[ $mode/$k != paced/1 && $mode/$k != burst/4 ]]; then
            continue
        fi
        echo "== expiry storm ($mode): $N sessions, $k worker(s)"
        bash "$0" --case storm "$k" "$N" "$mode" "$OUT/storm" "$LINGER_MS" >"$OUT/storm_${mode}_k$k.log" 2>&1 || {
            tail -n 40 "$OUT/storm_${mode}_k$k.log" >&2
            echo "$mode storm run with $k workers failed" >&2
            exit 1
        }
        grep -E 'PASS|FAIL' "$OUT/storm_${mode}_k$k.log" || true
    done
done
echo "== worker failure: $S sessions on each of 2 workers, one killed"
bash "$0" --case fail "$S" "$OUT/fail" "$ROOM_MS" >"$OUT/fail.log" 2>&1 || {
    tail -n 40 "$OUT/fail.log" >&2
    echo "worker failure run failed" >&2
    exit 1
}
grep -E 'PASS|FAIL' "$OUT/fail.log" || true

echo
note=""
((QUICK)) && note=" (--quick: small, indicative only)"
echo "Workers bench$note: $(nproc) CPUs, loopback, build $IMSPLIT_BUILD_DIR"
echo
echo "1. Expiry storm: releases acked per second, first ReleaseLeg sent to last acked (CP log, ms)"
printf '  %-6s %3s %6s %9s %8s %11s %7s   %-9s %-9s %-14s\n' \
    mode K N releases seconds releases/s "vs K=1" expiries setup "ack ms p50/p99"
while read -r mode k n rel secs per_s spread setup p50 p99; do
    base=$(awk -v m="$mode" '$1 == m && $2 == 1 { print $6 }' "$OUT/storm")
    ratio=$(awk -v a="$per_s" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
    printf '  %-6s %3s %6s %9s %8s %11s %7s   %-9s %-9s %-14s\n' "$mode" "$k" "$n" "$rel" "$secs" \
        "$per_s" "$ratio" "${spread}s" "${setup}s" "$p50/$p99"
done <"$OUT/storm"
echo "  expiries: first to last session timer expiry; setup: first to last 200 at the client;"
echo "  ack: the CP's ReleaseLeg send to result, per release."
echo "  paced: BYEs answered as they come (UDP), so releases can go no faster than the"
echo "    sessions expire: 'seconds' close to 'expiries' means the expiries set the rate."
echo "  burst: both sipps held (SIGSTOP) until every BYE was sent, then all answered at"
echo "    once (TCP): every release is due at the same moment; this is the release path's"
echo "    own rate (CP: BYE answer -> ReleaseLeg, worker: release -> result, CP: result)."
echo
get() { awk -v k="$1" '$1 == k { print $2 }' "$OUT/fail"; }
echo "2. Worker failure: $(get sessions_on_killed) of $(get sessions_total) sessions on the killed worker," \
    "--heartbeat-ms 200 --liveness 3, SIP over TCP (ms after SIGKILL)"
printf '  %-50s %8s\n' "first BYE sent: the worker is declared lost (CP log)" "$(get first_bye_sent)"
printf '  %-50s %8s\n' "last BYE sent, $(get bye_sent_count) in all (CP log)" "$(get last_bye_sent)"
printf '  %-50s %8s\n' "event=worker_lost logged, after its BYEs (CP log)" "$(get worker_lost)"
printf '  %-50s %8s\n' "last BYE received by the clients (sipp)" "$(get last_bye_client)"
printf '  %-50s %8s\n' "last BYE received by the controlling side (sipp)" "$(get last_bye_controlling)"
printf '  %-50s %8s\n' "last of its sessions closed (CP log)" "$(get last_session_closed)"
printf '  %-50s %8s\n' "imsplit_cp_sessions_active down by them (polled)" "$(get cp_active_down)"
printf '  %-50s %8s\n' "imsplit-ctl: worker has 0 sessions (polled)" "$(get ctl_sessions_zero)"
echo
