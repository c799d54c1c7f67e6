#!/usr/bin/env bash
# The CP dies (SIGKILL) with sessions up, and comes back.
#
# Two workers hold the legs of N sessions (long session timers, so nothing
# ends by itself). The CP is killed and started again on the same ports
# with the same flags: a new CP epoch. Both workers must register with the
# new CP (imsplit-ctl shows them live) and release every leg of the old
# epoch on their own, since no CP is left that knows those sessions:
# `event=legs_orphaned_released` in each worker's log naming both epochs,
# counts adding up to 2N legs, imsplit_up_legs_active and sockets back to
# 0. The old sipps (whose dialogs died with the CP) are stopped by pid.
# Then a new session must work end to end through the new CP: setup, BYE,
# both directions released.
#
# Two rounds, one per way a worker learns of the new CP:
#   late:  the CP is restarted only after both workers logged cp_lost
#          (missed heartbeats), so they are re-registering already;
#   quick: the CP is restarted at once, inside the workers' liveness
#          window; they learn of it from its first message of another
#          epoch.
# Nothing may be left.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init cp_kill

N=6
SE=600
HB_MS=200
LIVENESS=3
FAULT=$IMSPLIT_SRC_DIR/tests/fault

cp_epoch() { sed -n 's/.* event=started epoch=\([0-9]*\) .*/\1/p' "$T_DIR/cp.log" | head -n 1; }

# round NAME late|quick ROUND-NUMBER
round() {
    local tag=$1 mode=$2 r=$3 name n
    local uac=uac$tag uas=uas$tag
    t_log "---- round $r: restart $mode"
    uac_xml=$(t_scenario "$FAULT/client_hold.xml" HOLD_MS=60000)
    t_sipp_uas "$uas" "$FAULT/ctrl_hold.xml" -key se $SE -m $N
    t_sipp_uac "$uac" "$uac_xml" -key se $SE -m $N -l $N -r 20 -rp 1000
    t_wait_metric cp imsplit_cp_sessions_active -eq $N 10 || t_fail "$N sessions never were up"
    t_wait_metric up imsplit_up_legs_active -eq $((2 * N)) 5 || t_fail "the workers do not hold $((2 * N)) legs"
    for name in up-1 up-2; do
        t_assert_metric "$name" imsplit_up_legs_active -gt 0
    done
    local old_epoch new_epoch
    old_epoch=$(cp_epoch)

    t_kill cp KILL
    local kill_ts=${T_KILL_TS[cp]}
    if [[ $mode == late ]]; then
        for name in up-1 up-2; do
            t_assert_log "$name" -eq "$r" event=cp_lost why=missed_heartbeats
        done
    fi
    t_restart_cp
    local start_ts
    start_ts=$(t_log_times cp event=started | head -n 1)
    new_epoch=$(cp_epoch)
    [[ -n $new_epoch && $new_epoch != "$old_epoch" ]] ||
        t_fail "the new CP's epoch '$new_epoch' is not new (old '$old_epoch')"
    t_log "ok: CP epoch $old_epoch -> $new_epoch, restarted $(t_diff_ms "$kill_ts" "$start_ts") ms after the kill"

    # Both workers registered with the new CP and dropped the old legs.
    t_ctl workers
    for name in up-1 up-2; do
        [[ $(t_ctl_worker "$name" state) == live ]] || t_fail "imsplit-ctl: $name is not live at the new CP"
    done
    # A worker's Register may arrive more than once (resends queued while
    # the CP was down); each is answered alike.
    for name in up-1 up-2; do
        t_assert_log cp -ge 1 event=worker_registered "worker=$name"
    done
    local orphaned=0
    for name in up-1 up-2; do
        t_wait_metric "$name" imsplit_up_legs_active -eq 0 5 ||
            t_fail "$name still holds legs of the old CP epoch"
        t_wait_metric "$name" imsplit_up_sockets_open -eq 0 2 || t_fail "$name still holds sockets"
        t_assert_log "$name" -eq 1 event=legs_orphaned_released "old_cp_epoch=$old_epoch" "cp_epoch=$new_epoch"
        n=$(grep "event=legs_orphaned_released .*cp_epoch=$new_epoch" "$T_DIR/$name.log" |
            sed -n 's/.* count=\([0-9]*\) .*/\1/p')
        orphaned=$((orphaned + n))
        t_assert_log "$name" -eq 1 event=registered "cp_epoch=$new_epoch"
    done
    ((orphaned == 2 * N)) || t_fail "the workers released $orphaned orphaned legs, expected $((2 * N))"
    local reg_ts free_ts
    reg_ts=$(t_log_times cp event=worker_registered | tail -n 1)
    free_ts=$( (t_log_times up-1 event=legs_orphaned_released; t_log_times up-2 event=legs_orphaned_released) | sort -n | tail -n 1)
    t_log "ok: $orphaned legs of the old epoch released; new CP start -> both workers" \
        "registered $(t_diff_ms "$start_ts" "$reg_ts") ms, -> last orphaned leg released" \
        "$(t_diff_ms "$start_ts" "$free_ts") ms (CP log, ms resolution)"
    t_assert_metric cp imsplit_cp_sessions_active -eq 0

    # The old sipps: their dialogs are gone with the old CP.
    t_stop "$uac" KILL 2
    t_stop "$uas" KILL 2

    # A new session through the new CP, end to end.
    t_sipp_uas "${uas}_new" ctrl_answer.xml
    t_sipp_uac "${uac}_new" client_bye.xml -key se 30 -d 500
    t_expect_sipp_ok "${uac}_new" "${uas}_new"
    t_assert_metric cp imsplit_cp_sessions_total -eq 1
    t_wait_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq $(((N + 1) * r)) 5 || true
    t_assert_log cp -eq 1 event=release_sent direction=client reason=peer_bye
    t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_2xx
    t_assert_log cp -eq 2 event=leg_usage status=ok
    t_assert_metric up imsplit_up_legs_allocated_total -eq $(((2 * N + 2) * r))
    t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq $(((N + 1) * r))
    t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq $(((N + 1) * r))
    t_assert_metric up imsplit_up_legs_active -eq 0
}

t_start_stack --session-expires $SE --min-se 2 \
    --heartbeat-ms $HB_MS --liveness $LIVENESS
round 1 late 1
round 2 quick 2

t_finish
