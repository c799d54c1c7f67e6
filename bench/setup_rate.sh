#!/usr/bin/env bash
# Setup + teardown rate: the highest call rate imsplit (imsplit-cp and its
# workers) sustains with no failed call, against a reference measured in
# the same run: Kamailio as a stateful proxy with dialog + sst session
# timers and the media anchored on rtpengine (bench/ref/).
#
#   bench/setup_rate.sh [--quick]
#
# Builds nothing: takes the binaries from IMSPLIT_BUILD_DIR (default
# build/); installs Kamailio, rtpengine and sipp when missing (root).
# Everything on 127.0.0.1 (rtpengine's media addresses on 127.0.0.2...).
# Prints figures, never passes or fails on them; it fails only if a run
# breaks (a daemon dies, sessions or legs are left on imsplit, the probe
# call fails, a stack passes no step of the ramp) or, with --quick (one
# step far below either stack's limit, only to prove the bench runs), if
# a step fails at all.
#
# Both stacks run side by side for the whole ramp, each with its own sipp
# pair (bench/sip/setup_uac.xml, setup_uas.xml): INVITE with
# "Session-Expires: 90", 200 (the controlling side grants it,
# refresher=uac), ACK, hold H ms, BYE, 200. The controlling side's sipp
# stands behind imsplit-cp (its next hop) and behind Kamailio.
#
# Media. imsplit gets the MSRP offer of tests/sip/client_bye.xml and
# anchors it on a worker (two legs, paths rewritten). rtpengine does not
# anchor MSRP: it accepts an "m=message ... TCP/MSRP" section, creates the
# call and even binds a pair of UDP ports for it on each side, but leaves
# the section as it is (port and a=path untouched, a media-level c= with
# the original address added), so the MSRP would flow end to end around
# it (rtpengine daemon/sdp.c, media of type "message"). The reference
# therefore offers one audio section (PCMU) instead, which rtpengine
# anchors: it rewrites c= and the port and relays that media. Each stack
# thus does its own full anchoring work per call. BENCH_REF_MEDIA=msrp
# runs the reference with the MSRP offer (rtpengine then does the same
# allocation work but anchors nothing). The first call of each stack is a
# probe whose answer is printed, to show what each does with the media.
#
# Ramp: for each rate R of the list (calls per second), each stack in
# turn runs R x S calls (S seconds, at most BENCH_MAX_CALLS calls) at R/s.
# A step passes when sipp reports every call successful on both sides
# (no failed call: no timeout, no retransmission limit, no unexpected
# message) and the calls went out at 95 % of R or more (sipp itself or
# the machine falling behind is not a pass). A failed step is run once
# more; a stack stops when a step fails twice, and its figure is the
# highest R that passed. Between steps each stack must come back to zero
# calls (imsplit: imsplit_cp_sessions_active and imsplit_up_legs_active;
# reference: Kamailio's active dialogs and rtpengine's calls); after a
# failed step leftovers get SE + 15 s to be cleared by the session
# timers. Per step it also prints the setup time (INVITE to 200) as sipp
# saw it and the CPU the stack's daemons used per call (/proc/PID/stat,
# less their idle use: CP + workers; Kamailio's processes + rtpengine).
# Final figure: ratio = imsplit's highest rate / the reference's.
#
# Environment: BENCH_RATES (the ramp, calls/s, ascending; --quick 50),
# BENCH_STEP_S (S, seconds per step, default 10, --quick 2), BENCH_HOLD_MS
# (H, default 1000, --quick 200), BENCH_MAX_CALLS (per step, default
# 30000), BENCH_WORKERS (imsplit workers, default 2), BENCH_CP_LOG_LEVEL
# (default warn, as Kamailio logs nothing per call), BENCH_REF_MEDIA
# (audio|msrp), REF_KAM_CHILDREN (Kamailio UDP workers, default 8) and the
# other REF_* of bench/ref/ref.sh.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"
bench_quick_args "$@"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export IMSPLIT_SRC_DIR=$SRC
export IMSPLIT_BUILD_DIR=${IMSPLIT_BUILD_DIR:-$SRC/build}
BENCH_SIP=$SRC/bench/sip
CMDLINE="IMSPLIT_BUILD_DIR=$IMSPLIT_BUILD_DIR $0${1:+ $*}"

if ((QUICK)); then
    RATES=${BENCH_RATES:-50} STEP_S=${BENCH_STEP_S:-2} HOLD_MS=${BENCH_HOLD_MS:-200}
else
    RATES=${BENCH_RATES:-"100 200 400 600 800 1000 1250 1500 1750 2000 2500 3000 3500 4000 5000"}
    STEP_S=${BENCH_STEP_S:-10} HOLD_MS=${BENCH_HOLD_MS:-1000}
fi
MAX_CALLS=${BENCH_MAX_CALLS:-30000}
REF_MEDIA=${BENCH_REF_MEDIA:-audio}
SE=90
[[ $REF_MEDIA == audio || $REF_MEDIA == msrp ]] || { echo "BENCH_REF_MEDIA must be audio or msrp" >&2; exit 64; }
((STEP_S >= 1 && STEP_S <= 60)) || { echo "BENCH_STEP_S out of 1..60" >&2; exit 64; }
((HOLD_MS >= 0 && HOLD_MS <= 30000)) || { echo "BENCH_HOLD_MS out of 0..30000" >&2; exit 64; }
((MAX_CALLS >= 10 && MAX_CALLS <= 200000)) || { echo "BENCH_MAX_CALLS out of 10..200000" >&2; exit 64; }
max_rate=0
for r in $RATES; do
    [[ $r =~ ^[0-9]+$ ]] && ((r >= 1 && r <= 20000)) || { echo "BENCH_RATES: $r out of 1..20000" >&2; exit 64; }
    ((r > max_rate)) && max_rate=$r
done

source "$SRC/bench/ref/ref.sh"
ref_install

T_WORKERS=${BENCH_WORKERS:-2}
T_SIPP_TRACE_MSG=0
T_UP_ARGS=(--log-level warn)
source "$SRC/tests/lib/lib.sh"
t_init bench_setup_rate
ref_trap_exit
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- helpers -----------------------------------------------------------------

# b_render SRC OUT MARKER BLOCK: SRC with the line MARKER replaced by the
# contents of file BLOCK.
b_render() {
    python3 - "$@" <<'PY'
import sys
src, out, marker, block = sys.argv[1:]
s = open(src, encoding="utf-8").read()
if marker not in s:
    sys.exit("%s has no %s" % (src, marker))
s = s.replace(marker, open(block, encoding="utf-8").read().rstrip("\n"))
open(out, "w", encoding="utf-8").write(s)
PY
}

# b_sipp NAME PORT SCENARIO ARGS...: a sipp on 127.0.0.1:PORT over UDP,
# errors in NAME.err, in the background.
b_sipp() {
    local name=$1 port=$2 scen=$3
    shift 3
    t_spawn "$name" "$SIPP" -sf "$scen" -p "$port" -i 127.0.0.1 -t u1 -nostdin \
        -buff_size 4194304 -trace_err -error_file "$T_DIR/$name.err" "$@"
}

# b_stack_pids STACK PART: the daemons of a stack's SIP part (imsplit-cp;
# Kamailio's processes) or media part (the workers; rtpengine), one line.
b_stack_pids() {
    local n out=""
    case $1/$2 in
        imsplit/sip) out=${T_PID_OF[cp]} ;;
        imsplit/media) for n in "${T_UP_NAMES[@]}"; do out+="${out:+ }${T_PID_OF[$n]}"; done ;;
        ref/sip) out=${REF_KAM_PIDS[*]} ;;
        ref/media) out=${REF_RTP_PIDS[*]} ;;
    esac
    echo "$out"
}

# b_ticks STACK: "SIP_TICKS MEDIA_TICKS" used so far by the stack's daemons.
b_ticks() {
    local sip media
    read -r -a sip <<<"$(b_stack_pids "$1" sip)"
    read -r -a media <<<"$(b_stack_pids "$1" media)"
    echo "$(ref_proc_ticks "${sip[@]}") $(ref_proc_ticks "${media[@]}")"
}

# Fails the run if a daemon of either stack died.
b_check_daemons() {
    t_check_daemons
    ref_alive || t_fail "a reference process died (logs in $REF_DIR)"
}

# b_wait_gone NAME SECS: waits for sipp NAME to exit, watching the
# daemons; kills it after SECS. Returns 1 if it had to be killed.
b_wait_gone() {
    local name=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        t_alive "${T_PID_OF[$name]}" || break
        ((i % 5)) || b_check_daemons
        sleep 0.1
    done
    if t_alive "${T_PID_OF[$name]}"; then
        t_log "$name still running after ${secs}s, killing it"
        t_stop "$name" KILL 2
        return 1
    fi
    t_wait_exit "$name" 2 || true
    return 0
}

# b_active STACK: "sessions legs" the stack still holds (imsplit: CP
# sessions, worker legs; reference: Kamailio dialogs, rtpengine calls).
b_active() {
    case $1 in
        imsplit) echo "$(t_metric cp imsplit_cp_sessions_active) $(t_metric_up_sum imsplit_up_legs_active)" ;;
        ref) echo "$(ref_kam_stat dialog:active_dialogs) $(ref_rtp_sessions)" ;;
    esac
}

# b_drain STACK SECS: waits until the stack holds nothing; 1 on timeout.
b_drain() {
    local stack=$1 secs=$2 i a
    for ((i = 0; i < secs * 5; i++)); do
        a=$(b_active "$stack")
        [[ $a == "0 0" ]] && return 0
        ((i % 5)) || b_check_daemons
        sleep 0.2
    done
    t_log "$stack still holds '$a' (sessions/dialogs, legs/media calls) after ${secs}s"
    return 1
}

# b_stat STATFILE CALLS: "ok failed retrans offered_rate setup_avg_ms
# setup_p99" from sipp's -trace_stat file (1 s samples). offered_rate:
# calls/s sipp really started them at. setup_p99: the ResponseTimeRepartition
# bucket ("<N" ms) 99 % of the setup times fall in.
b_stat() {
    python3 - "$1" "$2" <<'PY'
import sys
path, calls = sys.argv[1], int(sys.argv[2])
rows = [l.rstrip("\n").split(";") for l in open(path, encoding="utf-8", errors="replace") if l.strip()]
head, rows = rows[0], rows[1:]
col = {h: i for i, h in enumerate(head)}
def num(r, h):
    return float(r[col[h]])
def when(r):
    return float(r[col["CurrentTime"]].split()[-1])
last = rows[-1]
ok, failed = int(num(last, "SuccessfulCall(C)")), int(num(last, "FailedCall(C)"))
retrans = int(num(last, "Retransmissions(C)"))
# The rate calls went out at: at the last sample before the last call
# left, calls started so far over the time so far; if the first sample
# already has them all, interpolated within that first second.
t0, offered = when(rows[0]), 0.0
prev = rows[0]
for r in rows[1:]:
    if num(r, "OutgoingCall(C)") >= calls:
        if prev is rows[0]:
            o1 = num(r, "OutgoingCall(C)")
            t_all = t0 + (calls / o1 if o1 else 1.0) * (when(r) - t0)
            offered = calls / (t_all - t0) if t_all > t0 else 0.0
        else:
            offered = num(prev, "OutgoingCall(C)") / (when(prev) - t0)
        break
    prev = r
hms = last[col["ResponseTimesetup(C)"]].split(":")
avg_ms = (int(hms[0]) * 3600 + int(hms[1]) * 60 + int(hms[2])) * 1000 + int(hms[3]) / 1000.0
buckets = [(h, int(num(last, h))) for h in head if h.startswith("ResponseTimeRepartitionsetup_")]
total = sum(n for _, n in buckets)
p99, acc = "n/a", 0
for h, n in buckets:
    acc += n
    if total and acc >= 0.99 * total:
        p99 = h.split("_", 1)[1]
        break
print(ok, failed, retrans, "%.0f" % offered, "%.1f" % avg_ms, p99)
PY
}

# ---- the stacks --------------------------------------------------------------

# The CP's own defaults for heartbeats (lib.sh's are for quick tests).
t_start_stack --session-expires "$SE" --heartbeat-ms 1000 --liveness 3 \
    --log-level "${BENCH_CP_LOG_LEVEL:-warn}"
ports=$(ref_free_udp_ports 2)
read -r REF_UAS_PORT REF_UAC_PORT <<<"$ports"
# Calls at once at the top of the ramp: R x (H + 1 s of setup and
# teardown), twice over for a backlog.
ref_capacity=$((max_rate * (HOLD_MS + 1000) / 1000 * 2))
ref_start "$T_DIR/ref" "sip:127.0.0.1:$REF_UAS_PORT" "$SE" "$ref_capacity" || t_fail "the reference did not start"

b_render "$BENCH_SIP/setup_uac.xml" "$T_DIR/imsplit_uac.xml" @OFFER@ "$BENCH_SIP/media_msrp_offer.sdp"
b_render "$BENCH_SIP/setup_uas.xml" "$T_DIR/imsplit_uas.xml" @ANSWER@ "$BENCH_SIP/media_msrp_answer.sdp"
b_render "$BENCH_SIP/setup_uac.xml" "$T_DIR/ref_uac.xml" @OFFER@ "$BENCH_SIP/media_${REF_MEDIA}_offer.sdp"
b_render "$BENCH_SIP/setup_uas.xml" "$T_DIR/ref_uas.xml" @ANSWER@ "$BENCH_SIP/media_${REF_MEDIA}_answer.sdp"

declare -A UAS_PORT=([imsplit]=$T_UAS_PORT [ref]=$REF_UAS_PORT)
declare -A UAC_PORT=([imsplit]=$T_UAC_PORT [ref]=$REF_UAC_PORT)
declare -A TARGET=([imsplit]=127.0.0.1:$T_SIP_PORT [ref]=127.0.0.1:$REF_SIP_PORT)

# One call per stack, its answer logged: what each does with the media.
for stack in imsplit ref; do
    b_sipp "$stack-probe-uas" "${UAS_PORT[$stack]}" "$T_DIR/${stack}_uas.xml" -m 1 -key se $SE -timeout 30s
    t_wait_listen "${UAS_PORT[$stack]}" udp 10 || t_fail "probe sipp does not listen"
    b_sipp "$stack-probe-uac" "${UAC_PORT[$stack]}" "$T_DIR/${stack}_uac.xml" -m 1 -key se $SE -d 100 \
        -timeout 30s -timeout_error -trace_logs -log_file "$T_DIR/$stack-probe.events" "${TARGET[$stack]}"
    b_wait_gone "$stack-probe-uac" 40 || true
    b_wait_gone "$stack-probe-uas" 10 || true
    [[ ${T_RC_OF[$stack-probe-uac]} == 0 && ${T_RC_OF[$stack-probe-uas]} == 0 ]] ||
        t_fail "the probe call through $stack failed (see $T_DIR/$stack-probe-uac.err)"
    b_drain "$stack" 10 || t_fail "$stack holds a call after the probe"
done
probe_answer() {
    grep '^ev=answered' "$T_DIR/$1-probe.events" | head -n 1 |
        sed -E 's/^ev=answered call=[0-9]+ //; s/ t=.*$//; s/c=c=/c=/; s/m=m=/m=/; s/path=a=path:/path=/; s/ path= *$//'
}

# What each stack's daemons use idle (heartbeats, timers), ticks per
# second, subtracted from the per-call CPU figures.
HZ=$(getconf CLK_TCK)
declare -A IDLE_TPS=()
idle_s=5
((QUICK)) && idle_s=1
for stack in imsplit ref; do
    read -r a_sip a_media <<<"$(b_ticks "$stack")"
    sleep "$idle_s"
    read -r b_sip b_media <<<"$(b_ticks "$stack")"
    IDLE_TPS[$stack]="$(awk -v d=$((b_sip - a_sip)) -v s="$idle_s" 'BEGIN { printf "%.3f", d / s }')"
    IDLE_TPS[$stack]+=" $(awk -v d=$((b_media - a_media)) -v s="$idle_s" 'BEGIN { printf "%.3f", d / s }')"
done

# ---- the ramp ----------------------------------------------------------------

STEPS=$T_DIR/steps
: >"$STEPS"
declare -A STOPPED=() BEST=([imsplit]=0 [ref]=0) WHY=()

# run_step STACK RATE: one step; appends a line to $STEPS, returns 1 if
# it failed.
run_step() {
    local stack=$1 rate=$2
    local calls=$((rate * STEP_S))
    ((calls > MAX_CALLS)) && calls=$MAX_CALLS
    local limit=$((rate * (HOLD_MS / 1000 + 10)))
    local bound=$((calls / rate + HOLD_MS / 1000 + 60))
    local uas=$stack-uas-$rate uac=$stack-uac-$rate stat=$T_DIR/$stack-$rate.csv
    local t0 t1 w0 w1
    b_sipp "$uas" "${UAS_PORT[$stack]}" "$T_DIR/${stack}_uas.xml" -m "$calls" -l "$limit" \
        -key se $SE -timeout "${bound}s" -timeout_error
    t_wait_listen "${UAS_PORT[$stack]}" udp 10 || t_fail "sipp $uas does not listen"
    t0=$(b_ticks "$stack")
    w0=$(t_now)
    b_sipp "$uac" "${UAC_PORT[$stack]}" "$T_DIR/${stack}_uac.xml" -m "$calls" -l "$limit" \
        -r "$rate" -rp 1000 -d "$HOLD_MS" -key se $SE -timeout "${bound}s" -timeout_error \
        -trace_stat -stf "$stat" -fd 1 "${TARGET[$stack]}"
    local why=""
    b_wait_gone "$uac" $((bound + 10)) || why="client sipp hung"
    b_wait_gone "$uas" 15 || why="${why:-controlling sipp still waiting for calls}"
    t1=$(b_ticks "$stack")
    w1=$(t_now)
    local ok=0 failed=0 retrans=0 offered=0 avg=n/a p99=n/a
    if [[ -s $stat ]]; then
        read -r ok failed retrans offered avg p99 <<<"$(b_stat "$stat" "$calls")"
    fi
    local rc_uac=${T_RC_OF[$uac]:-x} rc_uas=${T_RC_OF[$uas]:-x}
    if [[ -z $why ]]; then
        if ((failed > 0 || ok < calls)); then
            why="$failed failed calls"
        elif [[ $rc_uac != 0 || $rc_uas != 0 ]]; then
            why="sipp exit codes $rc_uac/$rc_uas"
        elif ((offered * 100 < rate * 95)); then
            why="calls went out at only $offered/s"
        fi
    fi
    local drain=5
    [[ -n $why ]] && drain=$((SE + 15))
    if ! b_drain "$stack" "$drain"; then
        [[ $stack == imsplit ]] && t_fail "imsplit holds sessions or legs $drain s after the step ($(b_active imsplit))"
        why="${why:+$why; }calls left: $(b_active ref)"
    fi
    # CPU per call: ticks over the step less the idle rate, SIP and media
    # part.
    local cpu_ms_per_call
    cpu_ms_per_call=$(awk -v a="$t0" -v b="$t1" -v idle="${IDLE_TPS[$stack]}" -v hz="$HZ" \
        -v n="$calls" -v w0="$w0" -v w1="$w1" 'BEGIN {
            split(a, x, " "); split(b, y, " "); split(idle, z, " ")
            for (i = 1; i <= 2; i++) {
                d[i] = y[i] - x[i] - z[i] * (w1 - w0)
                if (d[i] < 0) d[i] = 0
            }
            printf "%.3f+%.3f", d[1] * 1000.0 / hz / n, d[2] * 1000.0 / hz / n }')
    printf '%s %s %s %s %s %s %s %s %s %s %s\n' "$stack" "$rate" "$calls" "$ok" "$failed" "$retrans" \
        "$offered" "$avg" "$p99" "$cpu_ms_per_call" "${why:+FAIL:${why// /_}}" >>"$STEPS"
    t_log "$stack $rate/s: $ok/$calls ok, $failed failed, $retrans retransmissions, offered $offered/s," \
        "setup avg ${avg} ms, p99 ${p99} ms, CPU ms per call (SIP+media) ${cpu_ms_per_call}${why:+ -- FAIL: $why}"
    [[ -z $why ]]
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for rate in $RATES; do
    for stack in imsplit ref; do
        [[ -z ${STOPPED[$stack]:-} ]] || continue
        # A failed step runs once more before the stack stops: on a shared
        # machine one burst of someone else's load should not end a ramp.
        if run_step "$stack" "$rate" || run_step "$stack" "$rate"; then
            BEST[$stack]=$rate
        else
            STOPPED[$stack]=1
            WHY[$stack]="failed at $rate/s"
        fi
    done
    [[ -n ${STOPPED[imsplit]:-} && -n ${STOPPED[ref]:-} ]] && break
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the end: leftovers, then the figures ---------------------------------------

ref_left=$(b_active ref)
ref_stop
t_finish

echo
note=""
((QUICK)) && note=" (--quick: small, indicative only)"
echo "Setup + teardown rate$note: $(nproc) CPUs, loopback, build $IMSPLIT_BUILD_DIR"
echo "  load average before/after: $load_before / $load_after"
echo "  imsplit: imsplit-cp + $T_WORKERS imsplit-up, MSRP offer; answer to the probe call:"
echo "    $(probe_answer imsplit)"
echo "  reference: Kamailio 5.6 (dialog, sst; ${REF_KAM_CHILDREN:-8} UDP workers) + ${#REF_NG_PORTS[@]}" \
    "rtpengine (userspace), $REF_MEDIA offer; answer to the probe call:"
echo "    $(probe_answer ref)"
if [[ $REF_MEDIA == msrp ]]; then
    echo "    (rtpengine leaves an MSRP section as it is: nothing is anchored)"
else
    echo "    (rtpengine does not anchor MSRP, so the reference anchors one audio section)"
fi
echo "  calls: INVITE (Session-Expires: $SE), 200, ACK, hold $HOLD_MS ms, BYE, 200; $STEP_S s per step"
echo
printf '  %-8s %6s %7s %7s %6s %8s %8s %9s %9s %13s  %s\n' stack rate/s calls ok failed retrans \
    offered "setup ms" "setup p99" "CPU ms/call" result
while read -r stack rate calls ok failed retrans offered avg p99 cpu why; do
    printf '  %-8s %6s %7s %7s %6s %8s %8s %9s %9s %13s  %s\n' "$stack" "$rate" "$calls" "$ok" "$failed" \
        "$retrans" "$offered" "$avg" "$p99" "$cpu" "${why:-pass}" | sed 's/FAIL:/FAIL: /; s/_/ /g'
done <"$STEPS"
echo "  offered: calls/s sipp actually started; setup ms: INVITE to 200, mean; setup p99:"
echo "  the sipp repartition bucket (ms) holding 99 % of setups; CPU ms/call: CPU the stack's"
echo "  daemons used per call, SIP part + media part (imsplit: CP + workers; reference: all"
echo "  Kamailio processes + rtpengine), less what they use idle (measured before the ramp)."
echo
describe() {
    local s=$1
    if [[ -n ${STOPPED[$s]:-} ]]; then echo "${BEST[$s]} calls/s (${WHY[$s]})"; else echo "at least ${BEST[$s]} calls/s (the top of the ramp)"; fi
}
echo "  highest rate with zero failed calls:"
echo "    imsplit:   $(describe imsplit)"
echo "    reference: $(describe ref)"
ratio=$(awk -v a="${BEST[imsplit]}" -v b="${BEST[ref]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
echo "  ratio imsplit / reference: $ratio"
[[ $ref_left == "0 0" ]] || echo "  note: the reference still held '$ref_left' (dialogs, rtpengine calls) at the end"
echo
echo "  command: $CMDLINE"

# A stack that passed no step gave no figure; with --quick the steps are
# far below what either stack sustains, so any failed step is a breakage.
rc=0
for stack in imsplit ref; do
    if ((BEST[$stack] == 0)); then
        echo "setup_rate: BROKEN: $stack passed no step (${WHY[$stack]:-})" >&2
        rc=1
    elif ((QUICK)) && [[ -n ${STOPPED[$stack]:-} ]]; then
        echo "setup_rate: BROKEN: --quick: $stack ${WHY[$stack]}" >&2
        rc=1
    fi
done
exit "$rc"
