#!/usr/bin/env bash
# Session timer expiry where the controlling side answers the BYE 481: the
# CP must still release the controlling direction (reason=bye_error), and
# the client direction on its own 200 (reason=bye_2xx).
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init bye_481

SE=6
t_start_stack --session-expires $SE --min-se 2
t_sipp_uas uas ctrl_expiry_481.xml -key se $SE
t_sipp_uac uac client_expiry.xml -key se $SE
t_expect_sipp_ok uac uas

t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 1
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq 1
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_wait_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_error
t_assert_log cp -eq 1 event=release_sent direction=client reason=bye_2xx

t_finish
