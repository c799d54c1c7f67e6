#!/usr/bin/env bash
# BYE pacing: sessions whose timers expire together get their BYEs through
# a window of --bye-window transactions in flight; the others wait in
# order and go out as answers come in. With a window of 3 and a controlling
# side that answers each BYE only after 300 ms, 12 expiring sessions must
# never have more than 3 BYEs open, must fill the window, and must all end
# with both directions released and nothing left.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init bye_window

N=12
W=3
SE=6
FAULT=$IMSPLIT_SRC_DIR/tests/fault
T_SIPP_TRACE_MSG=0

t_start_stack --session-expires $SE --min-se 2 --bye-window $W
uas_xml=$(t_scenario "$FAULT/ctrl_slow_bye.xml" BYE_DELAY_MS=300)
t_sipp_uas uas "$uas_xml" -key se $SE -m $N
t_sipp_uac uac client_expiry.xml -key se $SE -m $N -l $N -r 100 -rp 1000
t_sipp_wait uac 60
t_sipp_wait uas 30
t_expect_sipp_ok uac uas

t_assert_metric cp imsplit_cp_session_timer_expired_total -eq $N
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq $N
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq $N
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq $N 10 || true
t_assert_log cp -eq $N event=release_sent direction=client reason=bye_2xx
t_assert_log cp -eq $N event=release_sent direction=controlling reason=bye_2xx
t_assert_metric cp imsplit_cp_byes_in_flight -eq 0
t_assert_metric cp imsplit_cp_byes_queued -eq 0

# The window as the CP's log shows it: +1 per bye_sent, -1 per
# bye_completed, in the order the lines were written.
peak=$(awk '/ event=bye_sent / { n++; if (n > p) p = n }
            / event=bye_completed / { n-- }
            END { print p + 0 }' "$T_DIR/cp.log")
((peak <= W)) || t_fail "$peak BYEs were open at once, the window is $W"
((peak == W)) || t_fail "at most $peak BYEs were open at once: the window of $W was never full"
t_log "ok: at most $peak BYE transactions open at once (window $W)"

# Pacing is FIFO: the BYEs go out in the order the sessions expired.
expired=$(grep -o ' event=session_timer_expired sid=[0-9a-f]*' "$T_DIR/cp.log" |
    sed 's/.*sid=//' | tr '\n' ' ')
first_bye=$(grep -o ' event=bye_sent sid=[0-9a-f]*' "$T_DIR/cp.log" |
    sed 's/.*sid=//' | awk '!seen[$0]++' | tr '\n' ' ')
[[ $expired == "$first_bye" ]] ||
    t_fail "BYEs left out of expiry order: expired [$expired] first BYE [$first_bye]"
t_log "ok: first BYEs in expiry order"

t_finish
