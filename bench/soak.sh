#!/usr/bin/env bash
# Soak: one imsplit-cp and three imsplit-up workers under a steady, mixed,
# moderate load for an hour (or --minutes N), with worker restarts; samples
# memory, sessions, legs and descriptors every minute, and fails if
# anything is left over, a daemon crashed or memory grew.
#
#   bench/soak.sh [--minutes N] [--rate R] [--out DIR] [--quick]
#
#   --minutes N  minutes of traffic, 1..600 (default 60); then the traffic
#                stops and every session is let end (its timers included)
#   --rate R     new calls per second, 0.5..20, one decimal (default 8)
#   --out DIR    where soak.csv, restarts.csv and summary.txt go (default:
#                a new directory under ${TMPDIR:-/tmp})
#   --quick      about 2.5 minutes: 90 s of traffic, Session-Expires 30,
#                a sample every 15 s, two worker restarts (a smoke run)
#
# Not part of the tests (scripts/test.sh): run by hand. Builds nothing:
# takes the binaries from IMSPLIT_BUILD_DIR (default build/), including
# tools/imsplit-msrp-peer. Everything on 127.0.0.1, SIP over UDP; the
# stack is started by tests/lib/lib.sh (t_start_stack), whose cleanup trap
# stops exactly the processes this script started, by PID, on any exit
# (Ctrl-C included). The daemons' logs stay in the lib's temp dir, kept
# with IMSPLIT_KEEP_TEST_DIR=1 or when the run fails.
#
# Load: sipp as IM client (bench/sip/soak_client.xml) at R calls/s and as
# controlling server (bench/sip/soak_ctrl.xml). The CP runs with
# --session-expires SE --min-se SE (SE = 90, RFC 4028's floor; --quick 30)
# and every client offers Session-Expires: SE. Each call draws its kind:
#   hangup   35 %  held 5-25 s (--quick 2-8 s), ended by the client's BYE
#   ctrlbye  25 %  held 5-25 s, ended by the controlling side's BYE
#   update   10 %  the client refreshes its leg by UPDATE every 4 SE/9 s
#                  (twice) and the CP refreshes the controlling leg by
#                  UPDATE every SE/2; client BYE after 12 SE/9 s, twice
#                  as long as the session timer would let it live
#   reinvite 10 %  the same with re-INVITEs on both legs
#   expiry   20 %  nobody refreshes: the CP's session timer ends the
#                  session at 2 SE/3 with a BYE on both legs
# Every 2 minutes (--quick: 35 s) one MSRP session: sipp
# (tests/sip/client_msrp_bye.xml) with two tools/imsplit-msrp-peer
# processes (tests/e2e/msrp_lib.sh), 20 x 1 KiB and 2 x 256 KiB each way,
# every byte checked, then the client's BYE; both peers must see the
# worker close their connection.
# Every 5 minutes from 2.5 minutes on (--quick: every 25 s), half-way
# between two samples, a worker restart, never of up-1 (kept
# running for the memory check), alternating up-2/up-3 every two restarts
# and SIGKILL/SIGTERM every other one: after SIGKILL the CP must declare
# the worker dead and end its sessions (BYE on both legs) within 45 s (a
# session goes once both BYEs are answered, or when one times out after
# 64 x T1 = 32 s) before the same id is started again; after SIGTERM the
# worker drains (--drain-grace-ms 10000) and must exit 0 before it is
# started again. New calls meanwhile
# go to the live workers. A restart never overlaps an MSRP session.
#
# Samples (soak.csv, every 60 s, --quick 15 s; one more once drained):
# elapsed s, RSS (VmRSS kB) and open descriptors of the CP, of each worker
# and of both sipps, the CP's heap (imsplit_cp_heap_bytes in use/free),
# live sessions and pending releases, each worker's legs, connections and
# buffered bytes, the sipps' call counters (-trace_stat), the CP's
# counters of expired timers, refreshes and sessions lost with a worker,
# and the CPU all of these used over the interval (% of one core).
#
# Checks (exit 1 if one fails; the summary lists each):
#  - no daemon died (a worker restarted on purpose is not a crash; a
#    drained one must exit 0), no sipp call failed, every MSRP session
#    passed, no refreshed session was ended by its timer, and at least
#    70 % of each kind ended the way that kind means to (the rest: worker
#    losses, crossings, set-ups refused while a worker was going);
#  - drained: 0 sessions and 0 pending releases on the CP, 0 legs,
#    connections and buffered bytes on every worker (metrics), imsplit-ctl
#    lists no session and 0 sessions/legs on every worker; then the stack
#    stops on SIGTERM with exit 0 (t_finish);
#  - memory flat: VmRSS at the end of the traffic <= VmRSS at 10 minutes
#    (or at half the traffic time in shorter runs) + max(2 MiB, 10 %), for
#    the CP and for every worker whose process ran through that whole
#    window (a restarted worker is reported, not compared). The load is
#    the same at both points, so the CP's RSS should be too, give or take
#    what the set-ups in flight hold (about 25 KB each for 32 s, some
#    6 MB at 8 calls/s, which the 16 MiB trim threshold returns only in
#    part); 2 MiB over the 10-minute value is what a leak of 90 bytes per
#    call would add in the 50 minutes after it (24,000 calls at 8/s);
#    SOAK_MEMORY_CHECK=0 reports the growth without judging it, for
#    sanitizer builds (AddressSanitizer keeps freed memory in quarantine,
#    so RSS grows with the traffic however correct the program);
#  - descriptors: once drained, the CP and every worker never restarted
#    hold no more descriptors than before the traffic (+2).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$SRC/bench/bench_lib.sh"

MINUTES=60 RATE=8 OUT="" QUICK=0
while (($#)); do
    case $1 in
        --minutes) MINUTES=${2:-}; shift $(($# >= 2 ? 2 : 1)) ;;
        --rate) RATE=${2:-}; shift $(($# >= 2 ? 2 : 1)) ;;
        --out) OUT=${2:-}; shift $(($# >= 2 ? 2 : 1)) ;;
        --quick) QUICK=1; shift ;;
        -h | --help) bench_help; exit 0 ;;
        *) echo "usage: $0 [--minutes N] [--rate R] [--out DIR] [--quick]" >&2; exit 64 ;;
    esac
done
[[ $MINUTES =~ ^[0-9]+$ ]] && ((MINUTES >= 1 && MINUTES <= 600)) ||
    { echo "--minutes: 1..600" >&2; exit 64; }
[[ $RATE =~ ^[0-9]+(\.[0-9])?$ ]] && awk -v r="$RATE" 'BEGIN { exit !(r >= 0.5 && r <= 20) }' ||
    { echo "--rate: 0.5..20 calls/s, one decimal at most" >&2; exit 64; }

export IMSPLIT_SRC_DIR=$SRC
export IMSPLIT_BUILD_DIR=${IMSPLIT_BUILD_DIR:-$SRC/build}
T_WORKERS=3
T_SIPP_TRACE_MSG=0
DRAIN_GRACE_MS=10000
T_UP_ARGS=(--drain-grace-ms "$DRAIN_GRACE_MS")
source "$SRC/tests/lib/lib.sh"
source "$SRC/tests/e2e/msrp_lib.sh"

if ((QUICK)); then
    TRAFFIC_S=90 SAMPLE_S=15 SE=30 HOLD_MIN_MS=2000 HOLD_MAX_MS=8000
    RESTART_FIRST_S=25 RESTART_EVERY_S=25 MSRP_EVERY_S=35 MSRP_FIRST_S=10
else
    TRAFFIC_S=$((MINUTES * 60)) SAMPLE_S=60 SE=90 HOLD_MIN_MS=5000 HOLD_MAX_MS=25000
    # Restarts half-way between samples: a drain takes about 11 s, so no
    # sample (the memory baseline included) finds a worker away.
    RESTART_FIRST_S=150 RESTART_EVERY_S=300 MSRP_EVERY_S=120 MSRP_FIRST_S=90
fi
REFRESH_MS=$((SE * 4000 / 9))
# Longest a call waits for a BYE: past any legitimate end (a refreshed
# session lives 3 REFRESH_MS, a timer ends one at 2 SE/3).
WAIT_MS=$((SE * 2000 + 30000))
# The memory baseline: 10 minutes in, or half the traffic time when that
# is shorter (a multiple of the sample interval either way).
BASE_S=$((TRAFFIC_S / 2 < 600 ? TRAFFIC_S / 2 : 600))
BASE_S=$((BASE_S / SAMPLE_S * SAMPLE_S))
MARGIN_MIN_KB=2048 MARGIN_PCT=10
MEMORY_CHECK=${SOAK_MEMORY_CHECK:-1}
FD_SLACK=2
# sipp: -r calls per -rp 10 s (one decimal of R), a bound on calls at once
# and on calls in all, and a time limit past the whole run.
SIPP_R=$(awk -v r="$RATE" 'BEGIN { printf "%d", r * 10 + 0.5 }')
SIPP_L=$(awk -v r="$RATE" 'BEGIN { printf "%d", r * 150 + 50 }')
SIPP_M=$(awk -v r="$RATE" -v s="$TRAFFIC_S" 'BEGIN { printf "%d", r * s * 2 + 100 }')
RUN_LIMIT_S=$((TRAFFIC_S + WAIT_MS / 1000 + 600))

[[ -n $OUT ]] || OUT=$(mktemp -d "${TMPDIR:-/tmp}/imsplit-soak-out.XXXXXX")
mkdir -p "$OUT"
CSV=$OUT/soak.csv
RESTARTS_CSV=$OUT/restarts.csv
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"

t_init soak
m_init
HZ=$(getconf CLK_TCK)
RUN_T0=$EPOCHSECONDS
FAILS=()
fail_note() {
    FAILS+=("$*")
    t_log "CHECK FAILED: $*"
}

# ---- sampling ----------------------------------------------------------------

rss_kb() { awk '$1 == "VmRSS:" { print $2; f = 1 } END { if (!f) print "-" }' "/proc/$1/status" 2>/dev/null || echo -; }
fd_count() {
    local n
    n=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) || n=-
    [[ -d /proc/$1 ]] || n=-
    echo "$n"
}
# pid of process NAME if it runs, else empty.
pid_of() {
    local pid=${T_PID_OF[$1]:-}
    [[ -n $pid ]] && t_alive "$pid" && echo "$pid"
    return 0
}
# A metric from an already fetched /metrics body ("-" if absent).
mval() { awk -v s="$2" '$1 == s { print $2; f = 1; exit } END { if (!f) print "-" }' <<<"$1"; }
# A column (by header name) of the last line of a sipp -trace_stat file.
sipp_stat() {
    [[ -s $1 ]] || { echo -; return; }
    awk -F';' -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
        { last = $0 } END { if (!k || last == "") { print "-"; exit } split(last, a, ";"); print a[k] }' "$1"
}

declare -A LAST_TICKS=()
LAST_SAMPLE_T=""
CSV_COLS="phase,elapsed_s,cp_rss_kb,cp_heap_in_use,cp_heap_free,cp_fds,cp_sessions,cp_releases_pending"
for w in 1 2 3; do CSV_COLS+=",up${w}_pid,up${w}_rss_kb,up${w}_fds,up${w}_legs,up${w}_sockets,up${w}_buffer_bytes"; done
CSV_COLS+=",uac_rss_kb,uac_fds,uas_rss_kb,uas_fds,uac_created,uac_ok,uac_failed,uac_current"
CSV_COLS+=",uas_created,uas_ok,uas_failed,uas_current,cp_sessions_total,cp_timer_expired"
CSV_COLS+=",cp_refreshes_received,cp_refreshes_sent,cp_worker_lost,restarts,msrp_ok,cpu_pct"
echo "$CSV_COLS" >"$CSV"

# sample PHASE ELAPSED: appends one row to soak.csv and keeps it in
# ROW[ELAPSED] (and ROW[PHASE] but for "traffic") for the summary.
declare -A ROW=()
sample() {
    local phase=$1 el=$2 body pid line name w
    body=$(t_metrics_body cp) || body=""
    pid=$(pid_of cp)
    line="$phase,$el,$(rss_kb "${pid:-0}"),$(mval "$body" 'imsplit_cp_heap_bytes{state="in_use"}')"
    line+=",$(mval "$body" 'imsplit_cp_heap_bytes{state="free"}'),$(fd_count "${pid:-0}")"
    line+=",$(mval "$body" imsplit_cp_sessions_active),$(mval "$body" imsplit_cp_releases_pending)"
    local cp_body=$body
    for w in 1 2 3; do
        name=up-$w
        pid=$(pid_of "$name")
        if [[ -n $pid && -z ${T_GONE[$name]:-} ]]; then
            body=$(t_metrics_body "$name") || body=""
            line+=",$pid,$(rss_kb "$pid"),$(fd_count "$pid"),$(mval "$body" imsplit_up_legs_active)"
            line+=",$(mval "$body" imsplit_up_sockets_open),$(mval "$body" imsplit_up_buffer_bytes)"
        else
            line+=",-,-,-,-,-,-"
        fi
    done
    for name in uac uas; do
        pid=$(pid_of "$name")
        line+=",$(rss_kb "${pid:-0}"),$(fd_count "${pid:-0}")"
    done
    line+=",$(sipp_stat "$T_DIR/uac.stat" 'OutgoingCall(C)'),$(sipp_stat "$T_DIR/uac.stat" 'SuccessfulCall(C)')"
    line+=",$(sipp_stat "$T_DIR/uac.stat" 'FailedCall(C)'),$(sipp_stat "$T_DIR/uac.stat" CurrentCall)"
    line+=",$(sipp_stat "$T_DIR/uas.stat" 'IncomingCall(C)'),$(sipp_stat "$T_DIR/uas.stat" 'SuccessfulCall(C)')"
    line+=",$(sipp_stat "$T_DIR/uas.stat" 'FailedCall(C)'),$(sipp_stat "$T_DIR/uas.stat" CurrentCall)"
    line+=",$(mval "$cp_body" imsplit_cp_sessions_total),$(mval "$cp_body" imsplit_cp_session_timer_expired_total)"
    line+=",$(mval "$cp_body" imsplit_cp_refreshes_received_total),$(mval "$cp_body" imsplit_cp_refreshes_sent_total)"
    line+=",$(mval "$cp_body" imsplit_cp_sessions_worker_lost_total),$RESTART_SEQ,$MSRP_OK"
    # CPU of every process this script runs, over the interval since the
    # last sample (a process started meanwhile counts from its start).
    local now ticks=0 t
    now=$(t_now)
    declare -A seen=()
    for name in "${!T_PID_OF[@]}"; do
        pid=${T_PID_OF[$name]}
        t_alive "$pid" || continue
        t=$(cpu_ticks "$pid")
        ticks=$((ticks + t - ${LAST_TICKS[$pid]:-0}))
        seen[$pid]=$t
    done
    local cpu=-
    if [[ -n $LAST_SAMPLE_T ]]; then
        cpu=$(awk -v k="$ticks" -v hz="$HZ" -v a="$LAST_SAMPLE_T" -v b="$now" \
            'BEGIN { printf "%.1f", (b > a ? 100 * k / hz / (b - a) : 0) }')
    fi
    LAST_TICKS=()
    for pid in "${!seen[@]}"; do LAST_TICKS[$pid]=${seen[$pid]}; done
    LAST_SAMPLE_T=$now
    line+=",$cpu"
    echo "$line" >>"$CSV"
    ROW[$el]=$line
    [[ $phase == traffic ]] || ROW[$phase]=$line
    t_log "sample $phase t=${el}s: $(col "$line" cp_rss_kb) kB cp, sessions $(col "$line" cp_sessions)," \
        "legs $(col "$line" up1_legs)/$(col "$line" up2_legs)/$(col "$line" up3_legs)," \
        "calls $(col "$line" uac_created) ($(col "$line" uac_failed) failed), cpu $cpu %"
}
# col ROW NAME: one column of a CSV row.
col() {
    awk -F, -v cols="$CSV_COLS" -v n="$2" 'BEGIN { split(cols, h, ",") }
        { for (i = 1; i <= NF; i++) if (h[i] == n) { print $i; exit } }' <<<"$1"
}

# ---- daemons -------------------------------------------------------------------

# Like t_check_daemons, but records the crash instead of exiting, so the
# summary still comes out. Returns 1 if a daemon died.
daemons_ok() {
    local name pid rc
    for name in cp "${T_UP_NAMES[@]}"; do
        [[ -z ${T_GONE[$name]:-} ]] || continue
        pid=${T_PID_OF[$name]:-}
        [[ -n $pid && -z ${T_RC_OF[$name]:-} ]] || continue
        if ! t_alive "$pid"; then
            rc=0
            wait "$pid" 2>/dev/null || rc=$?
            T_RC_OF[$name]=$rc
            fail_note "$name (pid $pid) died during the run (exit $rc)"
            return 1
        fi
    done
    return 0
}

# ---- worker restarts -------------------------------------------------------------

RESTART_SEQ=0 RESTART_STATE=idle RESTART_NAME="" RESTART_SIG="" RESTART_DEADLINE=0
RESTART_T0="" RESTART_ON=0 RESTART_LOST0=0
KILLS=0 TERMS=0
echo "n,elapsed_s,worker,signal,sessions_on_worker,legs_on_worker,sessions_lost,cp_done_ms,back_live_ms,exit" >"$RESTARTS_CSV"

lost_total() { t_metric cp imsplit_cp_sessions_worker_lost_total; }

# restart_begin ELAPSED: SIGKILL or SIGTERM to the next victim.
restart_begin() {
    local el=$1
    local victims=(up-2 up-3)
    RESTART_NAME=${victims[$(((RESTART_SEQ / 2) % 2))]}
    if ((RESTART_SEQ % 2 == 0)); then RESTART_SIG=KILL; else RESTART_SIG=TERM; fi
    RESTART_SEQ=$((RESTART_SEQ + 1))
    RESTART_EL=$el
    RESTART_ON=$(t_ctl_worker "$RESTART_NAME" sessions)
    RESTART_LEGS=$(t_metric "$RESTART_NAME" imsplit_up_legs_active)
    RESTART_LOST0=$(lost_total)
    RESTART_T0=$(t_now)
    RESTART_CP_DONE=""
    if [[ $RESTART_SIG == KILL ]]; then
        KILLS=$((KILLS + 1))
        t_kill "$RESTART_NAME" KILL
        RESTART_STATE=killed
        # Declared dead after --liveness 5 missed 200 ms heartbeats; its
        # BYEs then go out at once, and each session is gone once both
        # are answered, or at the latest when an unanswered one times out
        # (64 x T1 = 32 s).
        RESTART_DEADLINE=$((EPOCHSECONDS + 45))
    else
        TERMS=$((TERMS + 1))
        T_GONE[$RESTART_NAME]=1
        kill -s TERM "${T_PID_OF[$RESTART_NAME]}"
        t_log "sent SIGTERM to $RESTART_NAME (pid ${T_PID_OF[$RESTART_NAME]}): draining"
        RESTART_STATE=draining
        RESTART_DEADLINE=$((EPOCHSECONDS + DRAIN_GRACE_MS / 1000 + 20))
    fi
}

# restart_poll: moves a restart on; returns at once when nothing is due.
restart_poll() {
    local rc=""
    case $RESTART_STATE in
        idle) return 0 ;;
        killed)
            # The CP has declared it dead and closed its sessions.
            if [[ $(t_ctl_worker "$RESTART_NAME" state) == dead &&
                $(t_ctl_worker "$RESTART_NAME" sessions) == 0 ]]; then
                RESTART_CP_DONE=$(t_diff_ms "$RESTART_T0" "$(t_now)")
                rc=killed
            elif ((EPOCHSECONDS > RESTART_DEADLINE)); then
                fail_note "restart $RESTART_SEQ: the CP did not clear $RESTART_NAME's sessions within 45 s of SIGKILL" \
                    "(state $(t_ctl_worker "$RESTART_NAME" state), sessions $(t_ctl_worker "$RESTART_NAME" sessions))"
                rc=killed
            else
                return 0
            fi
            ;;
        draining)
            if t_wait_exit "$RESTART_NAME" 0; then
                rc=${T_RC_OF[$RESTART_NAME]}
                RESTART_CP_DONE=$(t_diff_ms "$RESTART_T0" "$(t_now)")
                [[ $rc == 0 ]] || fail_note "restart $RESTART_SEQ: $RESTART_NAME exited $rc after SIGTERM (expected 0)"
            elif ((EPOCHSECONDS > RESTART_DEADLINE)); then
                fail_note "restart $RESTART_SEQ: $RESTART_NAME still running $((DRAIN_GRACE_MS / 1000 + 20)) s after SIGTERM"
                t_stop "$RESTART_NAME" KILL 5
                rc=${T_RC_OF[$RESTART_NAME]:-killed}
            else
                return 0
            fi
            ;;
    esac
    t_start_worker "${RESTART_NAME#up-}"
    local back lost
    back=$(t_diff_ms "$RESTART_T0" "$(t_now)")
    lost=$(awk -v a="$RESTART_LOST0" -v b="$(lost_total)" 'BEGIN { print b - a }')
    echo "$RESTART_SEQ,$RESTART_EL,$RESTART_NAME,$RESTART_SIG,$RESTART_ON,$RESTART_LEGS,$lost,${RESTART_CP_DONE:-},$back,$rc" \
        >>"$RESTARTS_CSV"
    t_log "restart $RESTART_SEQ: $RESTART_NAME SIG$RESTART_SIG with $RESTART_ON sessions;" \
        "$lost ended as lost, cleared in ${RESTART_CP_DONE:-?} ms, live again after $back ms"
    RESTART_STATE=idle
}

# ---- MSRP sessions -----------------------------------------------------------------

MSRP_SEQ=0 MSRP_STATE=idle MSRP_OK=0 MSRP_BAD=0 MSRP_DEADLINE=0 MSRP_CPATH="" MSRP_NAME=""
MSRP_BYTES=0
MSRP_HOLD_MS=6000
MSRP_PEER_ARGS=(--send 20 --size 1024 --send 2 --size 262144 --chunk 65536
    --expect 20 --expect-size 1024 --expect 2 --expect-size 262144
    --wait-close --timeout-ms 30000)

msrp_begin() {
    local ports cport xport sport xpath
    MSRP_SEQ=$((MSRP_SEQ + 1))
    MSRP_NAME=msrp$MSRP_SEQ
    ports=$(t_free_ports 3) || t_fail "no free ports"
    read -r cport xport sport <<<"$ports"
    xpath="msrp://127.0.0.1:$xport/soak$xport;tcp"
    MSRP_CPATH="msrp://127.0.0.1:$cport/cli$xport;tcp"
    # soak_ctrl.xml answers the Request-URI user msrp-PORT with the path
    # msrp://[local_ip]:PORT/soakPORT;tcp and a=setup:passive.
    t_spawn "$MSRP_NAME-x" "$T_PEER_BIN" --listen "127.0.0.1:$xport" --local-path "$xpath" \
        "${MSRP_PEER_ARGS[@]}" --send-after-recv
    t_wait_listen "$xport" tcp 5 || t_fail "MSRP peer $MSRP_NAME-x does not listen on $xport"
    local -a common
    mapfile -t common < <(t_sipp_common "$MSRP_NAME-uac")
    t_spawn "$MSRP_NAME-uac" "$SIPP" -sf "$T_SCEN_DIR/client_msrp_bye.xml" -p "$sport" \
        "${common[@]}" -m 1 -s "msrp-$xport" -key se "$SE" -key cpath "$MSRP_CPATH" \
        -d "$MSRP_HOLD_MS" "$T_HOST:$T_SIP_PORT"
    MSRP_STATE=setup
    MSRP_DEADLINE=$((EPOCHSECONDS + 45))
}

msrp_poll() {
    local path name
    case $MSRP_STATE in
        idle) return 0 ;;
        setup)
            path=$(t_event_field "$MSRP_NAME-uac" answered path)
            if [[ -n $path ]]; then
                t_spawn "$MSRP_NAME-c" "$T_PEER_BIN" --connect "$path" --local-path "$MSRP_CPATH" \
                    "${MSRP_PEER_ARGS[@]}"
                MSRP_STATE=running
            elif ! t_alive "${T_PID_OF[$MSRP_NAME-uac]}"; then
                MSRP_STATE=running # reaped and judged below
            fi
            ;;
    esac
    if [[ $MSRP_STATE == running ]]; then
        local busy=0
        for name in "$MSRP_NAME-uac" "$MSRP_NAME-x" "$MSRP_NAME-c"; do
            [[ -n ${T_PID_OF[$name]:-} ]] && t_alive "${T_PID_OF[$name]}" && busy=1
        done
        if ((busy)) && ((EPOCHSECONDS <= MSRP_DEADLINE)); then
            return 0
        fi
        local ok=1 why=""
        for name in "$MSRP_NAME-uac" "$MSRP_NAME-x" "$MSRP_NAME-c"; do
            [[ -n ${T_PID_OF[$name]:-} ]] || { ok=0; why+=" $name never started"; continue; }
            t_stop "$name" TERM 2
            [[ ${T_RC_OF[$name]} == 0 ]] || { ok=0; why+=" $name exited ${T_RC_OF[$name]}"; }
        done
        for name in "$MSRP_NAME-x" "$MSRP_NAME-c"; do
            [[ -n ${T_PID_OF[$name]:-} ]] || continue
            [[ $(m_field "$name" received) == 22 && $(m_field "$name" bad) == 0 &&
                $(m_field "$name" closed_by_peer) == 1 ]] ||
                { ok=0; why+=" $name: $(grep -m1 '^sent=' "$T_DIR/$name.log" || echo 'no summary')"; }
            local bytes
            bytes=$(m_field "$name" payload_in)
            [[ $bytes =~ ^[0-9]+$ ]] && MSRP_BYTES=$((MSRP_BYTES + bytes))
        done
        if ((ok)); then
            MSRP_OK=$((MSRP_OK + 1))
        else
            MSRP_BAD=$((MSRP_BAD + 1))
            fail_note "MSRP session $MSRP_SEQ failed:$why"
        fi
        MSRP_STATE=idle
    fi
}

# ---- the run ---------------------------------------------------------------------

t_start_stack --session-expires "$SE" --min-se "$SE" --log-level info
CLIENT_XML=$(t_scenario "$SRC/bench/sip/soak_client.xml" HOLD_MIN_MS=$HOLD_MIN_MS \
    HOLD_MAX_MS=$HOLD_MAX_MS REFRESH_MS=$REFRESH_MS WAIT_MS=$WAIT_MS)
CTRL_XML=$(t_scenario "$SRC/bench/sip/soak_ctrl.xml" HOLD_MIN_MS=$HOLD_MIN_MS \
    HOLD_MAX_MS=$HOLD_MAX_MS WAIT_MS=$WAIT_MS)
# sipp stops a run whose event loop stalled too often (its watchdog); on
# a shared machine over an hour that says more about the machine.
SIPP_RUN=(-timeout "${RUN_LIMIT_S}s" -watchdog_minor_maxtriggers 1000000
    -watchdog_major_maxtriggers 1000 -trace_stat -fd 5)
t_sipp_uas uas "$CTRL_XML" -key se "$SE" -m "$SIPP_M" "${SIPP_RUN[@]}" -stf "$T_DIR/uas.stat"

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
START_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t_log "soak: $((TRAFFIC_S / 60)) min $((TRAFFIC_S % 60)) s of traffic at $RATE calls/s," \
    "SE $SE, 3 workers, out $OUT"
sample start 0
T0=$EPOCHSECONDS
t_sipp_uac uac "$CLIENT_XML" -key se "$SE" -r "$SIPP_R" -rp 10000 -l "$SIPP_L" -m "$SIPP_M" \
    "${SIPP_RUN[@]}" -stf "$T_DIR/uac.stat"

next_sample=$SAMPLE_S next_restart=$RESTART_FIRST_S next_msrp=$MSRP_FIRST_S
crashed=0
while ((next_sample <= TRAFFIC_S)); do
    sleep 1
    el=$((EPOCHSECONDS - T0))
    daemons_ok || { crashed=1; break; }
    for name in uac uas; do
        if ! t_alive "${T_PID_OF[$name]}"; then
            t_wait_exit "$name" 1 || true
            fail_note "sipp $name stopped during the traffic (exit ${T_RC_OF[$name]:-?})"
            crashed=1
        fi
    done
    ((crashed)) && break
    restart_poll
    msrp_poll
    # Nothing new in the last 30 s of traffic: what runs then still ends
    # before the checks.
    if ((el >= next_restart)); then
        if ((el < TRAFFIC_S - 30)) && [[ $RESTART_STATE == idle && $MSRP_STATE == idle ]]; then
            restart_begin "$el"
            next_restart=$((next_restart + RESTART_EVERY_S))
        elif ((el >= TRAFFIC_S - 30)); then
            next_restart=$((TRAFFIC_S + 1))
        fi
    fi
    if ((el >= next_msrp)); then
        if ((el < TRAFFIC_S - 30)) && [[ $RESTART_STATE == idle && $MSRP_STATE == idle ]]; then
            msrp_begin
            next_msrp=$((next_msrp + MSRP_EVERY_S))
        elif ((el >= TRAFFIC_S - 30)); then
            next_msrp=$((TRAFFIC_S + 1))
        fi
    fi
    if ((el >= next_sample)); then
        sample traffic "$next_sample"
        next_sample=$((next_sample + SAMPLE_S))
    fi
done

# ---- drain: stop the traffic, let every session end --------------------------------

DRAINED=0
if ((!crashed)); then
    t_log "traffic over: no new calls; waiting for every call to end"
    kill -s USR1 "${T_PID_OF[uac]}" 2>/dev/null || true
    limit=$((EPOCHSECONDS + WAIT_MS / 1000 + 60))
    while ((EPOCHSECONDS <= limit)); do
        daemons_ok || { crashed=1; break; }
        restart_poll
        msrp_poll
        if [[ $RESTART_STATE == idle && $MSRP_STATE == idle ]] && ! t_alive "${T_PID_OF[uac]}"; then
            break
        fi
        sleep 1
    done
fi
if ((!crashed)); then
    t_wait_exit uac 1 || { fail_note "the client sipp did not finish its calls in time"; t_stop uac KILL 2; }
    [[ $RESTART_STATE == idle ]] || fail_note "a worker restart did not finish"
    [[ $MSRP_STATE == idle ]] || fail_note "an MSRP session did not finish"
    # Every session ended and every release acknowledged, in the CP and on
    # every worker; then the controlling sipp has no call left either.
    ok=0
    for ((i = 0; i < 120; i++)); do
        ok=1
        t_cmp "$(t_metric cp imsplit_cp_sessions_active)" -eq 0 || ok=0
        t_cmp "$(t_metric cp imsplit_cp_releases_pending)" -eq 0 || ok=0
        for name in "${T_UP_NAMES[@]}"; do
            t_cmp "$(t_metric "$name" imsplit_up_legs_active)" -eq 0 || ok=0
            t_cmp "$(t_metric "$name" imsplit_up_sockets_open)" -eq 0 || ok=0
            t_cmp "$(t_metric "$name" imsplit_up_buffer_bytes)" -eq 0 || ok=0
        done
        t_cmp "$(sipp_stat "$T_DIR/uas.stat" CurrentCall)" -eq 0 || ok=0
        ((ok)) && break
        sleep 0.5
    done
    DRAINED=$ok
    sleep 6 # the sipps' last statistics line (-fd 5)
    sample drained $((EPOCHSECONDS - T0))
    kill -s USR1 "${T_PID_OF[uas]}" 2>/dev/null || true
    t_wait_exit uas 10 || t_stop uas KILL 2
fi

# ---- checks -----------------------------------------------------------------------

final=${ROW[drained]:-}
[[ -n $final ]] || final=$(tail -n 1 "$CSV")
if ((!crashed)); then
    ((DRAINED)) || fail_note "not drained 60 s after the last call ended: sessions $(col "$final" cp_sessions)," \
        "releases pending $(col "$final" cp_releases_pending), legs $(col "$final" up1_legs)/$(col "$final" up2_legs)/$(col "$final" up3_legs)," \
        "sockets $(col "$final" up1_sockets)/$(col "$final" up2_sockets)/$(col "$final" up3_sockets)," \
        "controlling calls $(col "$final" uas_current)"
    rows=$(t_ctl_session_rows) || rows=error
    [[ $rows == 0 ]] || fail_note "imsplit-ctl sessions lists $rows sessions"
    while read -r id st sess legs _; do
        [[ $st == live && $sess == 0 && $legs == 0 ]] ||
            fail_note "imsplit-ctl workers: $id is $st with $sess sessions, $legs legs"
    done < <(t_ctl_workers)
    CTL_WORKERS=$(t_ctl_workers | awk '{ printf "%s%s %s sessions=%s legs=%s", (NR > 1 ? "; " : ""), $1, $2, $3, $4 }')
fi
for name in uac uas; do
    f=$(sipp_stat "$T_DIR/$name.stat" 'FailedCall(C)')
    [[ $f == 0 ]] || fail_note "sipp $name: $f failed calls (see $name.err in the temp dir)"
done
# Each kind ends the way it is meant to, but for the share a worker loss,
# a crossing or a refused set-up takes (a sanity check of the load itself).
while read -r kind want; do
    read -r total good < <(awk -v k="kind=$kind" -v w="$want" '
        $1 == "ev=end" && $3 == k { n++; h = $4; if (index($0, "cause=408")) h = h "(timer)"
            if (h == "how=" w) g++ }
        END { print n + 0, g + 0 }' "$T_DIR/uac.events")
    ((total == 0 || good * 100 >= total * 70)) ||
        fail_note "only $good of $total $kind calls ended by '$want' at the client"
done <<<"hangup hangup
ctrlbye bye
update hangup
reinvite hangup
expiry bye(timer)"
# Refreshed sessions must never be ended by their timer.
timer_on_refreshed=$(grep -cE '^ev=end .*kind=(update|reinvite) .*cause=408' "$T_DIR/uac.events" || true)
((timer_on_refreshed == 0)) || fail_note "$timer_on_refreshed refreshed sessions were ended by the session timer"
((KILLS == 0)) || t_cmp "$(col "$final" cp_worker_lost)" -gt 0 ||
    fail_note "workers were killed but the CP ended no session as lost"

# Memory: end of traffic against the baseline, for the CP and every
# worker that ran through the window.
base=${ROW[$BASE_S]:-} end=${ROW[$TRAFFIC_S]:-} start=${ROW[0]}
MEM_LINES=()
mem_check() { # LABEL COLUMN PID_COLUMN
    local label=$1 c=$2 pc=$3 b e s limit verdict
    s=$(col "$start" "$c") b=$(col "$base" "$c") e=$(col "$end" "$c")
    if [[ -z $base || -z $end ]]; then
        verdict="no sample"
        [[ $crashed == 1 ]] || fail_note "memory of $label: no sample at ${BASE_S}s or ${TRAFFIC_S}s"
    elif [[ -n $pc && ($b == - || $e == -) ]]; then
        verdict="restarting at a sample: not compared"
    elif [[ $b == - || $e == - ]]; then
        verdict="no value"
        [[ $crashed == 1 ]] || fail_note "memory of $label: no value at ${BASE_S}s or ${TRAFFIC_S}s"
    elif [[ -n $pc && $(col "$base" "$pc") != "$(col "$end" "$pc")" ]]; then
        verdict="restarted in between: not compared"
        limit=-
    else
        limit=$(awk -v b="$b" -v m="$MARGIN_MIN_KB" -v p="$MARGIN_PCT" \
            'BEGIN { x = b * p / 100; if (x < m) x = m; printf "%d", b + x }')
        if ((e <= limit)); then verdict=ok
        elif [[ $MEMORY_CHECK == 0 ]]; then verdict="grew (not judged: SOAK_MEMORY_CHECK=0)"
        else
            verdict=GREW
            fail_note "memory of $label grew: $e kB at ${TRAFFIC_S}s, $b kB at ${BASE_S}s (limit $limit kB)"
        fi
    fi
    MEM_LINES+=("$(printf '  %-20s %10s %10s %10s %10s %10s  %s' "$label" "$s" "$b" "$e" \
        "$(awk -v b="$b" -v e="$e" 'BEGIN { if (b ~ /^[0-9]+$/ && e ~ /^[0-9]+$/) printf "%+d", e - b; else print "-" }')" \
        "${limit:--}" "$verdict")")
}
mem_check "imsplit-cp RSS kB" cp_rss_kb ""
for w in 1 2 3; do mem_check "up-$w RSS kB" "up${w}_rss_kb" "up${w}_pid"; done
# The heap in use is reported with the same rule, not judged: it follows
# the sessions and transactions in flight at the moment of the sample.
# Descriptors once drained against before the traffic.
FD_LINES=()
if ((!crashed)); then
    for c in cp up1 up2 up3; do
        s=$(col "$start" "${c}_fds") e=$(col "$final" "${c}_fds")
        if [[ $c != cp && $(col "$start" "${c}_pid") != "$(col "$final" "${c}_pid")" ]]; then
            FD_LINES+=("$c $s -> $e (restarted)")
            continue
        fi
        FD_LINES+=("$c $s -> $e")
        [[ $s =~ ^[0-9]+$ && $e =~ ^[0-9]+$ ]] && ((e <= s + FD_SLACK)) ||
            fail_note "descriptors of $c: $e once drained, $s before the traffic"
    done
fi

# CPU of the whole run: this script, everything it started and reaped
# (sipps, MSRP peers, workers restarted, and the helpers: curl,
# imsplit-ctl, python3, awk, sleep) and the daemons still running.
TOTAL_TICKS=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$$/stat")
for name in cp "${T_UP_NAMES[@]}"; do
    pid=$(pid_of "$name")
    [[ -z $pid ]] || TOTAL_TICKS=$((TOTAL_TICKS + $(cpu_ticks "$pid")))
done
RUN_S=$((EPOCHSECONDS - RUN_T0))

# ---- summary ----------------------------------------------------------------------

{
    echo "Soak: $START_DATE, $((TRAFFIC_S / 60)) min $((TRAFFIC_S % 60)) s of traffic at $RATE calls/s,"
    echo "  3 workers, SIP over UDP, Session-Expires/Min-SE $SE, $(nproc) CPUs, load average before: $LOAD0"
    echo "  build $IMSPLIT_BUILD_DIR; samples in $CSV"
    echo
    echo "Memory (VmRSS kB; baseline at ${BASE_S}s, end at ${TRAFFIC_S}s; limit = baseline + max(${MARGIN_MIN_KB} kB, ${MARGIN_PCT} %)):"
    printf '  %-20s %10s %10s %10s %10s %10s  %s\n' "" start "${BASE_S}s" "${TRAFFIC_S}s" growth limit verdict
    printf '%s\n' "${MEM_LINES[@]}"
    printf '  %-20s %10s %10s %10s\n' "cp heap in use B" "$(col "$start" cp_heap_in_use)" \
        "$(col "$base" cp_heap_in_use)" "$(col "$end" cp_heap_in_use)"
    printf '  %-20s %10s %10s %10s\n' "cp sessions" "$(col "$start" cp_sessions)" \
        "$(col "$base" cp_sessions)" "$(col "$end" cp_sessions)"
    echo "  RSS slope from the baseline on (least squares over the samples, kB/min):"
    awk -F, -v cols="$CSV_COLS" -v b="$BASE_S" -v e="$TRAFFIC_S" '
        BEGIN { n = split(cols, h, ","); for (i = 1; i <= n; i++) k[h[i]] = i }
        $1 == "traffic" && $2 >= b && $2 <= e {
            for (j = 0; j < 4; j++) {
                c = (j == 0 ? "cp" : "up" j); v = $(k[c "_rss_kb"])
                if (j > 0 && $(k[c "_pid"]) != pid0[c]) { if (pid0[c] == "") pid0[c] = $(k[c "_pid"]); else bad[c] = 1 }
                if (v !~ /^[0-9]+$/) { bad[c] = 1; continue }
                x = $2 / 60; N[c]++; Sx[c] += x; Sy[c] += v; Sxx[c] += x * x; Sxy[c] += x * v
            } }
        END { for (j = 0; j < 4; j++) { c = (j == 0 ? "cp" : "up" j)
                d = N[c] * Sxx[c] - Sx[c] * Sx[c]
                if (bad[c] || N[c] < 3 || d == 0) printf "    %-4s -\n", c
                else printf "    %-4s %+.1f\n", c, (N[c] * Sxy[c] - Sx[c] * Sy[c]) / d } }' "$CSV"
    echo
    echo "Calls ended, by kind and how (client side, uac.events; how: hangup = own BYE,"
    echo "  bye = the BYE it waited for, cp_bye = a BYE from the CP at another point,"
    echo "  481 = its request found the session gone, rejected = 500/503 to the INVITE;"
    echo "  timer = the BYE carried the session timer's Reason):"
    awk '$1 == "ev=end" { kind = $3; how = $4; sub(/^kind=/, "", kind); sub(/^how=/, "", how)
            if (index($0, "cause=408")) how = how "(timer)"; n[kind " " how]++ }
        END { for (x in n) printf "  %-10s %-14s %8d\n", substr(x, 1, index(x, " ") - 1), substr(x, index(x, " ") + 1), n[x] }' \
        "$T_DIR/uac.events" | sort
    echo "Controlling side (uas.events):"
    awk '$1 == "ev=end" { kind = $3; how = $4; sub(/^kind=/, "", kind); sub(/^how=/, "", how)
            if (index($0, "cause=408")) how = how "(timer)"; n[kind " " how]++ }
        END { for (x in n) printf "  %-10s %-14s %8d\n", substr(x, 1, index(x, " ") - 1), substr(x, index(x, " ") + 1), n[x] }' \
        "$T_DIR/uas.events" | sort
    echo "sipp: client $(col "$final" uac_created) calls, $(col "$final" uac_ok) successful, $(col "$final" uac_failed) failed;" \
        "controlling $(col "$final" uas_created) calls, $(col "$final" uas_ok) successful, $(col "$final" uas_failed) failed"
    echo "CP: $(col "$final" cp_sessions_total) sessions, $(col "$final" cp_timer_expired) ended by the session timer," \
        "$(col "$final" cp_refreshes_received) refreshes received, $(col "$final" cp_refreshes_sent) sent"
    echo
    echo "Worker restarts: $RESTART_SEQ ($KILLS SIGKILL, $TERMS SIGTERM); sessions the CP ended as lost" \
        "with their worker: $(col "$final" cp_worker_lost) (imsplit_cp_sessions_worker_lost_total)"
    column -s, -t <"$RESTARTS_CSV" | sed 's/^/  /'
    echo "  (cp_done_ms: SIGKILL -> the CP lists the worker dead with 0 sessions, or SIGTERM -> exit;"
    echo "   back_live_ms: -> the same id registered and live again)"
    echo "MSRP sessions: $MSRP_OK passed, $MSRP_BAD failed, $MSRP_BYTES payload bytes received by the peers"
    echo
    awk -F, -v cols="$CSV_COLS" 'BEGIN { n = split(cols, h, ","); for (i = 1; i <= n; i++) k[h[i]] = i }
        $1 == "traffic" && $(k["cpu_pct"]) != "-" { s += $(k["cpu_pct"]); c++; if ($(k["cpu_pct"]) > m) m = $(k["cpu_pct"]) }
        END { if (c) printf "CPU (daemons, sipps, MSRP peers; %% of one core per interval): mean %.1f, max %.1f\n", s / c, m }' "$CSV"
    awk -v t="$TOTAL_TICKS" -v hz="$HZ" -v s="$RUN_S" 'BEGIN { printf "CPU of the whole run, this script and its helpers included: %.0f s in %d s, %.1f %% of one core\n", t / hz, s, (s > 0 ? 100 * t / hz / s : 0) }'
    if ((!crashed)); then
        echo "Drained: CP sessions $(col "$final" cp_sessions), releases pending $(col "$final" cp_releases_pending);" \
            "legs $(col "$final" up1_legs)/$(col "$final" up2_legs)/$(col "$final" up3_legs)," \
            "connections $(col "$final" up1_sockets)/$(col "$final" up2_sockets)/$(col "$final" up3_sockets)," \
            "buffered bytes $(col "$final" up1_buffer_bytes)/$(col "$final" up2_buffer_bytes)/$(col "$final" up3_buffer_bytes)"
        echo "  imsplit-ctl sessions: ${rows:-?} rows; workers: ${CTL_WORKERS:-?}"
        echo "  descriptors before the traffic -> drained: ${FD_LINES[*]}"
    fi
    echo
    if ((${#FAILS[@]})); then
        echo "FAILED checks:"
        printf '  - %s\n' "${FAILS[@]}"
    else
        memory="memory flat"
        [[ $MEMORY_CHECK == 0 ]] && memory="memory not judged"
        echo "All checks passed (no crash, no failed call, drained to zero, $memory)."
    fi
} | tee -a "$SUMMARY"

((${#FAILS[@]} == 0)) || exit 1
# Leak check once more and a graceful stop: every daemon must exit 0.
t_finish
