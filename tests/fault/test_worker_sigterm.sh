#!/usr/bin/env bash
# SIGTERM on a worker drains it (a rolling update): it takes no new legs,
# the CP stops placing sessions on it at once, its live sessions carry on
# untouched until their clients hang up, and then it deregisters and exits
# 0 by itself. A second worker started with a short --drain-grace-ms cuts
# what is left when the grace is over, and exits 0 too.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init worker_sigterm

N=4
SE=600       # no session timer runs out during the test
HOLD_MS=4000 # the clients hang up this long after their ACK
FAULT=$IMSPLIT_SRC_DIR/tests/fault

t_start_stack --session-expires $SE --min-se 2
uac_xml=$(t_scenario "$FAULT/client_hold.xml" HOLD_MS=$HOLD_MS)
# One controlling side for these N and the 2 placed during the drain.
t_sipp_uas uas "$FAULT/ctrl_hold.xml" -key se $SE -m $((N + 2))
t_sipp_uac uac "$uac_xml" -key se $SE -m $N -l $N -r 20 -rp 1000
t_wait_metric cp imsplit_cp_sessions_active -eq $N 10 || t_fail "$N sessions never were up"
on_1=$(t_ctl_worker up-1 sessions)
((on_1 > 0)) || t_fail "no session on up-1"
legs_before=$(t_metric up-1 imsplit_up_legs_allocated_total)

kill -TERM "${T_PID_OF[up-1]}"
T_GONE[up-1]=1 # it leaves by itself: not a crash
t_assert_log up-1 -eq 1 event=shutdown_draining "legs=$((2 * on_1))"
for ((i = 0; i < 40; i++)); do
    [[ $(t_ctl_worker up-1 state) == draining ]] && break
    sleep 0.05
done
[[ $(t_ctl_worker up-1 state) == draining ]] ||
    t_fail "the CP shows up-1 as '$(t_ctl_worker up-1 state)', expected draining"
t_alive "${T_PID_OF[up-1]}" || t_fail "up-1 exited with live sessions"
t_log "ok: up-1 draining with $on_1 live sessions"

# New sessions go to the other worker only.
uac2_xml=$(t_scenario "$FAULT/client_hold.xml" HOLD_MS=300)
uac2_port=$(t_free_ports 1)
t_sipp_uac uac2 "$uac2_xml" -key se $SE -m 2 -l 1 -p "$uac2_port"
t_sipp_wait uac2 10
t_expect_sipp_ok uac2
[[ $(t_metric up-1 imsplit_up_legs_allocated_total) == "$legs_before" ]] ||
    t_fail "the draining worker took new legs"

# Its sessions end when their clients hang up, not before; then it leaves.
t_expect_sipp_ok uac uas
(($(t_event_count uac bye) == 0)) || t_fail "$(t_event_count uac bye) held sessions got a BYE from the CP (cut)"
t_wait_exit up-1 10 || t_fail "up-1 did not leave after its last leg"
[[ ${T_RC_OF[up-1]} == 0 ]] || t_fail "up-1 exited ${T_RC_OF[up-1]}, expected 0"
t_assert_log up-1 -eq 1 event=deregister reason=drained sent=yes
t_assert_log cp -eq 1 event=worker_left worker=up-1 reason=drained sessions_ended=0
t_assert_metric cp imsplit_cp_workers_left_total -eq 1
t_log "ok: up-1 stayed until its sessions ended, then left with exit 0"

# Grace over: what is left is cut, and the worker still exits 0.
T_UP_ARGS=(--drain-grace-ms 500)
t_start_worker 1
t_stop up-2 TERM 5 # no legs: leaves at once
[[ ${T_RC_OF[up-2]} == 0 ]] || t_fail "up-2 exited ${T_RC_OF[up-2]}"
T_GONE[up-2]=1
uac_xml=$(t_scenario "$FAULT/client_hold.xml" HOLD_MS=$HOLD_MS)
t_sipp_uas uas3 "$FAULT/ctrl_hold.xml" -key se $SE -m 1
t_sipp_uac uac3 "$uac_xml" -key se $SE -m 1
t_wait_metric cp imsplit_cp_sessions_active -eq 1 10 || t_fail "the session never was up"
kill -TERM "${T_PID_OF[up-1]}"
T_GONE[up-1]=1
t_wait_exit up-1 5 || t_fail "up-1 did not leave after its grace"
[[ ${T_RC_OF[up-1]} == 0 ]] || t_fail "up-1 exited ${T_RC_OF[up-1]} after its grace, expected 0"
t_assert_log up-1 -eq 1 event=drain_grace_over legs_cut=2
# The CP learns of it (Deregister) and ends the session on both legs.
t_assert_log cp -eq 1 event=worker_left worker=up-1 reason=shutdown sessions_ended=1
t_wait_metric cp imsplit_cp_sessions_active -eq 0 5 || t_fail "the cut session did not end"
t_expect_sipp_ok uac3 uas3
t_stop cp TERM 8
[[ ${T_RC_OF[cp]} == 0 ]] || t_fail "cp exited ${T_RC_OF[cp]}"
T_DONE=1
t_log "PASS"
