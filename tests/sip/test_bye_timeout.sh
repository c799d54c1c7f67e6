#!/usr/bin/env bash
# Session timer expiry where the controlling side never answers the BYE:
# with --sip-t1 100 the BYE transaction times out after 64*T1 = 6.4 s and
# the CP must still release the controlling direction (reason=bye_timeout).
# The client direction must not wait for it: it is released on the
# client's 200, seconds earlier.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init bye_timeout

SE=6
T1=100
t_start_stack --session-expires $SE --min-se 2 --sip-t1 $T1
# Silent for 9 s after the BYE: longer than 64*T1, so every retransmission
# of the BYE lands in this call and none starts a new one.
t_sipp_uas uas ctrl_expiry_silent.xml -key se $SE -d 9000
t_sipp_uac uac client_expiry.xml -key se $SE
t_expect_sipp_ok uac

t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1 15 ||
    t_fail "controlling direction never released after the unanswered BYE"
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_timeout
t_assert_log cp -eq 1 event=release_sent direction=client reason=bye_2xx

bye_at=$(t_log_times cp event=bye_sent leg=controlling | head -n 1)
rel_ctrl_at=$(t_log_times cp event=release_sent direction=controlling | head -n 1)
rel_client_at=$(t_log_times cp event=release_sent direction=client | head -n 1)
t_assert_near "BYE -> controlling release (ms)" "$(t_diff_ms "$bye_at" "$rel_ctrl_at")" $((64 * T1)) 600
client_ms=$(t_diff_ms "$bye_at" "$rel_client_at")
t_cmp "$client_ms" -lt 1000 ||
    t_fail "client direction released ${client_ms} ms after the BYEs: it waited for the other leg"
t_log "ok: client direction released ${client_ms} ms after the BYEs"

t_wait_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 1
t_expect_sipp_ok uas

t_finish
