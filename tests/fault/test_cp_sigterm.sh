#!/usr/bin/env bash
# SIGTERM on the CP with live sessions: new INVITEs get 503 with
# Retry-After, every session is ended with BYE on both legs, each direction
# is released on the workers, and the CP exits 0 once all are closed.
# Second round: BYEs answered later than --shutdown-grace-ms; the CP gives
# up on them at the grace, still releases their legs on the workers, and
# exits 0. The workers keep running and hold nothing afterwards.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init cp_sigterm

N=2
SE=600
FAULT=$IMSPLIT_SRC_DIR/tests/fault
uac_xml=$(t_scenario "$FAULT/client_hold.xml" HOLD_MS=20000)
refused_port=$(t_free_ports 1)

# One round: N held sessions whose controlling side answers BYE after
# BYE_DELAY_MS, then SIGTERM to the CP.
shutdown_round() {
    local round=$1 delay=$2
    local uas_xml
    uas_xml=$(t_scenario "$FAULT/ctrl_slow_bye.xml" BYE_DELAY_MS="$delay")
    t_sipp_uas "uas$round" "$uas_xml" -key se $SE -m $N
    t_sipp_uac "uac$round" "$uac_xml" -key se $SE -m $N -l $N
    t_wait_metric cp imsplit_cp_sessions_active -eq $N 10 || t_fail "round $round: sessions never up"
    sleep 0.3 # every ACK in
    kill -TERM "$T_CP_PID"
    T_GONE[cp]=1 # it leaves by itself: not a crash
    t_assert_log cp -eq 1 event=stopping "sessions=$N"
    # Still there, and refusing new work.
    t_sipp_uac "refused$round" "$FAULT/client_503.xml" -key se $SE -p "$refused_port"
    t_sipp_wait "refused$round" 10
    t_expect_sipp_ok "refused$round"
    [[ $(t_event_field "refused$round" rejected retry_after) =~ ^[0-9]+$ ]] ||
        t_fail "round $round: the 503 has no Retry-After"
    t_wait_exit cp 10 || t_fail "round $round: the CP did not exit"
    [[ ${T_RC_OF[cp]} == 0 ]] || t_fail "round $round: the CP exited ${T_RC_OF[cp]}"
    # Both legs of every session got their BYE.
    t_expect_sipp_ok "uac$round" "uas$round"
    (($(t_event_count "uac$round" bye) == N)) || t_fail "round $round: clients got $(t_event_count "uac$round" bye) BYEs, expected $N"
    (($(t_event_count "uas$round" bye) == N)) || t_fail "round $round: controlling side got $(t_event_count "uas$round" bye) BYEs, expected $N"
    # Nothing left on the workers, though the CP is gone.
    for ((i = 0; i < 40; i++)); do
        (($(t_metric up-1 imsplit_up_legs_active) + $(t_metric up-2 imsplit_up_legs_active) == 0)) && break
        sleep 0.05
    done
    (($(t_metric up-1 imsplit_up_legs_active) + $(t_metric up-2 imsplit_up_legs_active) == 0)) ||
        t_fail "round $round: legs left on the workers after the CP's shutdown"
}

# Round 1: the BYEs are answered within the grace. The CP stays up until
# then, long enough for the refused INVITE to be sent (sipp's start-up
# takes a few hundred ms on a loaded machine).
t_start_stack --session-expires $SE --min-se 2 --shutdown-grace-ms 5000
shutdown_round 1 2000
t_assert_log cp -eq 0 event=session_abandoned
t_assert_log cp -eq $N event=release_sent direction=client reason=bye_2xx cause=shutdown
t_assert_log cp -eq $N event=release_sent direction=controlling reason=bye_2xx cause=shutdown
t_log "ok: round 1, every session closed before the CP exited"

# Round 2: the controlling side answers after the grace.
T_CP_ARGS=(--session-expires $SE --min-se 2 --shutdown-grace-ms 2000)
t_restart_cp
unset 'T_GONE[cp]'
shutdown_round 2 4000
t_assert_log cp -eq $N event=session_abandoned
t_assert_log cp -eq $N event=release_sent direction=controlling reason=shutdown
t_log "ok: round 2, sessions abandoned at the grace, their legs released anyway"

for name in up-1 up-2; do
    t_stop "$name" TERM 5
    [[ ${T_RC_OF[$name]} == 0 ]] || t_fail "$name exited ${T_RC_OF[$name]}"
    T_GONE[$name]=1
done
T_DONE=1
t_log "PASS"
