#!/usr/bin/env bash
# The IM Client cancels during setup: the controlling side rings (180,
# relayed), the client CANCELs; the CP answers 200 + 487, CANCELs the far
# side (which answers 200 + 487, ACKed by the CP) and releases both legs.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init cancel

t_start_stack --session-expires 30 --min-se 2
t_sipp_uas uas ctrl_ring.xml
t_sipp_uac uac client_cancel.xml -key se 30
t_expect_sipp_ok uac uas

t_assert_metric cp imsplit_cp_sessions_total -eq 1
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq 0
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq 0
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_wait_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric up imsplit_up_legs_allocated_total -eq 2
t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
t_assert_log cp -eq 1 event=release_sent direction=client reason=setup_failed
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=setup_failed

t_finish
