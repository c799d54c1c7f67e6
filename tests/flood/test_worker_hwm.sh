#!/usr/bin/env bash
# A worker whose control socket is at its high-water mark.
#
# One worker holds K established sessions and is stopped (SIGSTOP). An
# INVITE storm then makes the CP send it AllocateLegs (and their resends)
# that it never reads: the kernel's socket buffers fill, then the CP's
# ZeroMQ queue towards it reaches --ctl-hwm, and sends fail with EAGAIN.
# The storm's Call-IDs carry PAD extra bytes (the CP copies the Call-ID
# into each AllocateLeg), so that the several MiB the kernel buffers on
# loopback fill well within the liveness window.
# The CP must not block (its metrics and SIP keep answering), must count
# and log the failures (imsplit_cp_ctl_send_failed_total{why="queue_full"},
# event=ctl_send_failed at most once a second), and its memory must stay
# bounded. When the worker misses its heartbeats (--liveness) the CP
# declares it dead: the K sessions get BYE on both legs, the storm's
# set-ups get 503. After SIGCONT the worker comes back (new control
# socket, registered again), the legs it still holds are released by the
# audit, a new call is answered, and nothing is left.
T_WORKERS=1
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init worker_hwm

K=4
N=2000
RATE=500
HWM=1000
PAD=2000 # bytes added to each Call-ID, so to each AllocateLeg
HB_MS=500
LIVENESS=12
SE=600
FAULT=$IMSPLIT_SRC_DIR/tests/fault
FLOOD=$IMSPLIT_SRC_DIR/tests/flood

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$T_CP_PID/status" 2>/dev/null || echo 0; }

t_start_stack --session-expires $SE --min-se 2 --heartbeat-ms $HB_MS \
    --liveness $LIVENESS --ctl-hwm $HWM --max-pending 100000
hold_xml=$(t_scenario "$FAULT/client_hold.xml" HOLD_MS=40000)
t_sipp_uas uas "$FAULT/ctrl_hold.xml" -key se $SE -m $K
t_sipp_uac uac "$hold_xml" -key se $SE -m $K -l $K -r 20 -rp 1000
t_wait_metric cp imsplit_cp_sessions_active -eq $K 10 || t_fail "$K sessions never were up"
t_wait_metric up-1 imsplit_up_legs_active -eq $((2 * K)) 5 || t_fail "the worker does not hold $((2 * K)) legs"
sleep 0.3 # every ACK in
rss_before=$(rss_kb)
# Bound on the CP's growth while the worker is stopped (the sessions of
# the storm, their commands and the queue up to --ctl-hwm): 128 MiB, or
# 512 MiB under AddressSanitizer (redzones and its quarantine of freed
# memory; the CP's heap gauge reads 0 there).
max_growth_kb=131072
[[ $(t_metric cp 'imsplit_cp_heap_bytes{state="in_use"}') == 0 ]] && max_growth_kb=524288

t_kill up-1 STOP
stop_ts=${T_KILL_TS[up-1]}
storm_port=$(t_free_ports 1)
# sipp's Call-ID format (%u call number, %p pid, %s address) with PAD bytes.
t_sipp_uac storm "$FLOOD/client_storm.xml" -key se $SE -m $N -r $RATE -rp 1000 -l $N \
    -p "$storm_port" -cid_str "%u-%p@%s-$(printf 'x%.0s' $(seq $PAD))"

# While the worker is stopped: the CP answers, its sends fail, memory holds.
rss_peak=$rss_before full=0
for ((i = 0; i < 200; i++)); do
    full=$(t_metric cp 'imsplit_cp_ctl_send_failed_total{why="queue_full"}')
    [[ $full != missing ]] || t_fail "the CP's metrics do not answer while its queue is full"
    r=$(rss_kb)
    ((r > rss_peak)) && rss_peak=$r
    [[ $(t_metric cp 'imsplit_cp_workers{state="dead"}') == 1 ]] && break
    t_check_daemons
    sleep 0.1
done
lost_ts=$(t_log_times cp event=worker_lost worker=up-1 | head -n 1)
[[ -n $lost_ts ]] || t_fail "the stopped worker was never declared dead"
full=$(t_metric cp 'imsplit_cp_ctl_send_failed_total{why="queue_full"}')
t_log "worker declared dead $(t_diff_ms "$stop_ts" "$lost_ts") ms after SIGSTOP; $full sends refused (queue full)"
((full > 0)) || t_fail "no send failed with a full queue: the storm did not reach --ctl-hwm $HWM"
t_assert_log cp -ge 1 event=ctl_send_failed worker=up-1 why=queue_full
lines=$(t_count_log cp event=ctl_send_failed worker=up-1 why=queue_full)
secs=$(awk -v a="$stop_ts" -v b="$lost_ts" 'BEGIN { print int(b - a) + 2 }')
((lines <= secs)) || t_fail "$lines ctl_send_failed lines in about $secs s: not rate-limited"
t_assert_log cp -eq 1 event=worker_lost worker=up-1 why=missed_heartbeats
ended=$(grep -m1 'event=worker_lost worker=up-1' "$T_DIR/cp.log" | sed -n 's/.* sessions_ended=\([0-9]*\).*/\1/p')
((ended >= K)) || t_fail "the worker's loss ended $ended sessions, expected at least the $K established ones"
t_assert_metric cp imsplit_cp_sessions_worker_lost_total -eq "$ended"

# The K established sessions: BYE on both legs.
t_wait_metric cp imsplit_cp_sessions_active -eq 0 10 || t_fail "sessions left after the worker was lost"
t_expect_sipp_ok uac uas
(($(t_event_count uac bye) == K)) || t_fail "$(t_event_count uac bye) clients got a BYE, expected $K"
(($(t_event_count uas bye) == K)) || t_fail "$(t_event_count uas bye) controlling sides got a BYE, expected $K"
t_log "ok: the $K established sessions ended with BYE on both legs"
t_sipp_wait storm 60
rejected=$(t_event_count storm rejected)
answered=$(t_event_count storm answered)
t_log "storm: $rejected refused (503), $answered answered of $N"
((answered == 0)) || t_fail "$answered storm calls answered while the only worker was stopped"
((rejected == N)) || t_fail "only $rejected of $N storm INVITEs got their 503"
rss_dead=$(rss_kb)

t_kill up-1 CONT
cont_ts=${T_KILL_TS[up-1]}
t_wait_metric cp 'imsplit_cp_workers{state="live"}' -eq 1 10 || t_fail "the worker did not come back"
t_wait_metric up-1 imsplit_up_legs_active -eq 0 10 || t_fail "the worker kept legs after coming back"
t_log "ok: worker live again, no legs, $(t_diff_ms "$cont_ts" "$(t_now)") ms after SIGCONT"
t_sipp_uas uas2 "$FAULT/ctrl_hold.xml" -key se $SE
t_sipp_uac after "$FLOOD/client_storm.xml" -key se $SE -p "$storm_port"
t_expect_sipp_ok after uas2
(($(t_event_count after answered) == 1)) || t_fail "a call after the recovery was not answered"
t_log "ok: a call after the recovery was answered"
rss_after=$(rss_kb)
t_log "CP VmRSS: before ${rss_before} kB, peak while stopped ${rss_peak} kB, worker dead ${rss_dead} kB, after ${rss_after} kB"
((rss_peak - rss_before < max_growth_kb)) ||
    t_fail "the CP grew by $((rss_peak - rss_before)) kB while the worker was stopped (bound $max_growth_kb kB)"

t_finish
