#!/usr/bin/env bash
# The controlling side hangs up: 200 to its BYE, a plain BYE to the IM
# Client, both directions released.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init bye_controlling

SE=30
t_start_stack --session-expires $SE --min-se 2
t_sipp_uas uas ctrl_bye.xml -d 1000
t_sipp_uac uac client_wait_bye.xml -key se $SE
t_expect_sipp_ok uac uas

t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 0
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq 0
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_wait_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq 1 5 || true
t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=peer_bye
t_assert_log cp -eq 1 event=release_sent direction=client reason=bye_2xx

t_finish
