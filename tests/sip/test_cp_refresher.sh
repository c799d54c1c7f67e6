#!/usr/bin/env bash
# The controlling side makes the CP the refresher of its leg
# ("Session-Expires: 6;refresher=uac", Allow: UPDATE): the CP must send an
# UPDATE with "Session-Expires: 6;refresher=uac" every SE/2 = 3 s. The
# client leg (SE 12, client refreshes, so it would expire at 8 s) is ended
# by the client's BYE at 7 s, after the second UPDATE.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init cp_refresher

CTRL_SE=6
CLIENT_SE=12
t_start_stack --session-expires $CLIENT_SE --min-se 2
t_sipp_uas uas ctrl_refresher.xml -key se $CTRL_SE
t_sipp_uac uac client_bye.xml -key se $CLIENT_SE -d 7000
t_expect_sipp_ok uac uas

half_ms=$((CTRL_SE * 1000 / 2))
t_assert_near "ACK of the 200 -> first UPDATE (ms)" \
    "$(t_diff_ms "$(t_event uas acked)" "$(t_event uas update1)")" $half_ms 250
t_assert_near "first -> second UPDATE (ms)" \
    "$(t_diff_ms "$(t_event uas update1)" "$(t_event uas update2)")" $half_ms 250
for n in 1 2; do
    se=$(t_event_field uas update$n se)
    [[ $se =~ ^$CTRL_SE[[:space:]]*\;[[:space:]]*refresher=uac$ ]] ||
        t_fail "UPDATE $n has Session-Expires '$se', expected '$CTRL_SE;refresher=uac'"
done

t_assert_log cp -eq 2 event=refresh_sent dir=controlling method=UPDATE
t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 0
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq 1
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_assert_log cp -eq 1 event=release_sent direction=client reason=peer_bye
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_2xx

t_finish
