#!/usr/bin/env bash
# The session limit (--max-sessions): with MAX sessions held, the next
# INVITE gets 503 with Retry-After (the client's scenario fails without
# it), counted in imsplit_cp_invites_rejected_total{why="max_sessions"}
# and logged; the held sessions are untouched. Once they end, a new INVITE
# is answered again, and nothing is left.
T_WORKERS=1
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init max_sessions

MAX=3
SE=600
FAULT=$IMSPLIT_SRC_DIR/tests/fault
FLOOD=$IMSPLIT_SRC_DIR/tests/flood

t_start_stack --session-expires $SE --min-se 2 --max-sessions $MAX
hold_xml=$(t_scenario "$FAULT/client_hold.xml" HOLD_MS=4000)
t_sipp_uas uas "$FAULT/ctrl_hold.xml" -key se $SE -m $MAX
t_sipp_uac uac "$hold_xml" -key se $SE -m $MAX -l $MAX -r 20 -rp 1000
t_wait_metric cp imsplit_cp_sessions_active -eq $MAX 10 || t_fail "$MAX sessions never were up"
t_wait_metric cp imsplit_cp_sessions_pending -eq 0 5 || t_fail "the $MAX sessions are still being set up"

# One more: refused, with Retry-After.
refused_port=$(t_free_ports 1)
t_sipp_uac refused "$FAULT/client_503.xml" -key se $SE -p "$refused_port"
t_expect_sipp_ok refused
retry=$(t_event_field refused rejected retry_after)
[[ $retry == 5 ]] || t_fail "the 503 carried Retry-After '$retry', expected 5"
t_log "ok: INVITE number $((MAX + 1)) refused with 503, Retry-After: $retry"
t_assert_metric cp 'imsplit_cp_invites_rejected_total{why="max_sessions"}' -eq 1
t_assert_metric cp 'imsplit_cp_invites_rejected_total{why="max_pending"}' -eq 0
t_assert_metric cp imsplit_cp_sessions_active -eq $MAX
t_assert_log cp -eq 1 event=invite_rejected status=503 why=max_sessions sessions=$MAX

# The held sessions end by their clients' BYEs; then there is room again.
t_expect_sipp_ok uac uas
(($(t_event_count uac hangup_done) == MAX)) || t_fail "$(t_event_count uac hangup_done) of $MAX held sessions ended normally"
t_wait_metric cp imsplit_cp_sessions_active -eq 0 5 || t_fail "sessions left after the hang-ups"
t_sipp_uas uas2 "$FAULT/ctrl_hold.xml" -key se $SE
t_sipp_uac after "$FLOOD/client_storm.xml" -key se $SE -p "$refused_port"
t_expect_sipp_ok after uas2
(($(t_event_count after answered) == 1)) || t_fail "the INVITE after the sessions ended was not answered"
t_log "ok: an INVITE is answered again once the sessions ended"
t_assert_metric cp 'imsplit_cp_invites_rejected_total{why="max_sessions"}' -eq 1

t_finish
