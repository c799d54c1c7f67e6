#!/usr/bin/env bash
# The IM Client refreshes its leg with UPDATE every SE/2: the session lives
# well past SE, each UPDATE is answered 200 with Session-Expires by the CP
# and not forwarded (the controlling scenario fails on any request but the
# final BYE), and the client's BYE ends it normally.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init refresh_update

SE=6
t_start_stack --session-expires $SE --min-se 2
t_sipp_uas uas ctrl_answer.xml
t_sipp_uac uac client_refresh_update.xml -key se $SE -d $((SE * 1000 / 2))
t_expect_sipp_ok uac uas

lived=$(t_diff_ms "$(t_event uac answered)" "$(t_event uac bye_done)")
t_cmp "$lived" -gt $((SE * 1000)) || t_fail "session lived ${lived} ms, expected more than SE"
t_log "ok: session lived ${lived} ms with SE ${SE}s"
for n in 1 2; do
    se=$(t_event_field uac refreshed$n se)
    [[ $se =~ ^$SE\;[[:space:]]*refresher=uac$ ]] ||
        t_fail "200 to UPDATE $n has Session-Expires '$se', expected '$SE;refresher=uac'"
done

t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 0
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq 0
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq 1
t_assert_log cp -eq 2 event=refresh_received dir=client
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_assert_log cp -eq 1 event=release_sent direction=client reason=peer_bye
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_2xx

t_finish
