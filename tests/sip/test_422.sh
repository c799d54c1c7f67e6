#!/usr/bin/env bash
# RFC 4028 422 handling, both ways, on one stack:
#  (a) the controlling side answers 422 "Min-SE: 8": the CP retries on the
#      same Call-ID with CSeq + 1, "Session-Expires: 8" and "Min-SE: 8";
#  (b) the client offers "Session-Expires: 1", below the CP's Min-SE of 2:
#      422 with "Min-SE: 2"; the client retries with 2 and succeeds.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init 422

t_start_stack --session-expires 6 --min-se 2

t_log "(a) 422 from the controlling side"
t_sipp_uas uas_a ctrl_422.xml -key min_se 8
t_sipp_uac uac_a client_bye.xml -key se 6 -d 1000
t_expect_sipp_ok uac_a uas_a
first_cseq=$(t_event_field uas_a invite cseq)
retry_cseq=$(t_event_field uas_a retry cseq)
[[ ${first_cseq%% *} =~ ^[0-9]+$ && $retry_cseq == "$((${first_cseq%% *} + 1)) INVITE" ]] ||
    t_fail "retry CSeq '$retry_cseq' is not first CSeq '$first_cseq' + 1"
[[ $(t_event_field uas_a retry call_id) == "$(t_event_field uas_a invite call_id)" ]] ||
    t_fail "retry changed the Call-ID"
[[ $(t_event_field uas_a retry se) == 8 ]] ||
    t_fail "retry Session-Expires '$(t_event_field uas_a retry se)', expected 8"
[[ $(t_event_field uas_a retry min_se) == 8 ]] ||
    t_fail "retry Min-SE '$(t_event_field uas_a retry min_se)', expected 8"
t_log "ok: retry with CSeq '$retry_cseq', Session-Expires 8, Min-SE 8"
t_assert_log cp -eq 1 event=invite_422
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_wait_metric cp imsplit_cp_sessions_active -eq 0 5 || t_fail "(a) session not closed"

t_log "(b) 422 from the CP to the client"
t_sipp_uas uas_b ctrl_answer.xml
t_sipp_uac uac_b client_422.xml -key se_low 1 -key se 2 -d 500
t_expect_sipp_ok uac_b uas_b
[[ $(t_event_field uac_b rejected_422 min_se) == 2 ]] ||
    t_fail "422 Min-SE '$(t_event_field uac_b rejected_422 min_se)', expected 2"
se=$(t_event_field uac_b answered se)
[[ $se =~ ^2\;[[:space:]]*refresher=uac$ ]] || t_fail "200 Session-Expires '$se', expected '2;refresher=uac'"
t_log "ok: 422 with Min-SE 2, then 200 with Session-Expires: $se"
t_assert_log cp -eq 1 event=invite_rejected status=422

t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 0
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 2 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 2
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 2
t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq 2
t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 2

t_finish
