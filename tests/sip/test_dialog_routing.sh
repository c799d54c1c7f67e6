#!/usr/bin/env bash
# The CP's own dialog state (RFC 3261 12), on both legs: route sets from
# Record-Route (in order on the client leg, reversed on the controlling
# leg), remote targets from Contact and their refresh by UPDATE, requests
# matched by To tag, Call-ID and From tag (481 otherwise), CSeq order (500
# for an older one). See client_dialog.xml and ctrl_dialog.xml.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init dialog_routing

SE=6
t_start_stack --session-expires $SE --min-se 2
t_sipp_uas uas ctrl_dialog.xml -key se $SE
t_sipp_uac uac client_dialog.xml -key se $SE
t_expect_sipp_ok uac uas

for ev in unknown_tag wrong_nonce out_of_order refreshed bye; do
    [[ -n $(t_event uac $ev) ]] || t_fail "client: no '$ev' step"
done
t_log "ok: client leg: 481 x2, 500, target refresh, BYE via rr1 to the new target ($(t_event_field uac bye route))"
[[ -n $(t_event uas bye) ]] || t_fail "controlling: no BYE"
t_log "ok: controlling leg: ACK and BYE via '$(t_event_field uas bye route)' to its Contact"

t_assert_metric cp imsplit_cp_sessions_total -eq 1
t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 1
t_assert_metric cp imsplit_cp_refreshes_received_total -eq 1
t_assert_log cp -eq 1 event=release_sent direction=client reason=bye_2xx
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_2xx
t_assert_metric cp imsplit_cp_session_strings_spilled_total -eq 0

t_finish
