#!/usr/bin/env bash
# Sessions that never come up, on one stack:
#  (a) the controlling side answers 486: the client gets 486 too, the CP
#      ACKs the far side's 486, and both legs are released;
#  (b) the client offers no MSRP media: 488, nothing sent to the
#      controlling side, nothing allocated.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init setup_failure

t_start_stack --session-expires 30 --min-se 2

t_log "(a) 486 from the controlling side"
t_sipp_uas uas_a ctrl_busy.xml
t_sipp_uac uac_a client_rejected.xml -key se 30
t_expect_sipp_ok uac_a uas_a
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_wait_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric up imsplit_up_legs_allocated_total -eq 2
t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
t_assert_log cp -eq 1 event=release_sent direction=client reason=setup_failed
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=setup_failed
t_wait_metric cp imsplit_cp_sessions_active -eq 0 5 || t_fail "(a) session not closed"

t_log "(b) no MSRP media in the offer"
# No controlling side runs: an INVITE sent there would go unanswered and
# the client would get a timeout instead of 488.
t_sipp_uac uac_b client_no_msrp.xml -key se 30
t_expect_sipp_ok uac_b
t_assert_log cp -ge 1 event=invite_rejected status=488
t_assert_metric up imsplit_up_legs_allocated_total -eq 2
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1

t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 0
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq 0
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq 0
t_finish
