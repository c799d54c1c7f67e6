#!/usr/bin/env bash
# The IM Client refreshes its leg with re-INVITEs (same SDP) every SE/2:
# each is answered 200 with the CP's previous SDP for that leg and a
# Session-Expires, ACKed, not forwarded; the session outlives SE; the
# client's BYE ends it normally.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init refresh_reinvite

SE=6
t_start_stack --session-expires $SE --min-se 2
t_sipp_uas uas ctrl_answer.xml
t_sipp_uac uac client_refresh_reinvite.xml -key se $SE -d $((SE * 1000 / 2))
t_expect_sipp_ok uac uas

lived=$(t_diff_ms "$(t_event uac answered)" "$(t_event uac bye_done)")
t_cmp "$lived" -gt $((SE * 1000)) || t_fail "session lived ${lived} ms, expected more than SE"
t_log "ok: session lived ${lived} ms with SE ${SE}s"
path=$(t_event_field uac answered path)
for n in 1 2; do
    se=$(t_event_field uac refreshed$n se)
    [[ $se =~ ^$SE\;[[:space:]]*refresher=uac$ ]] ||
        t_fail "200 to re-INVITE $n has Session-Expires '$se', expected '$SE;refresher=uac'"
    rpath=$(t_event_field uac refreshed$n path)
    [[ $rpath == "$path" ]] || t_fail "re-INVITE $n answered with path '$rpath', expected the original '$path'"
done
t_log "ok: re-INVITEs answered with the original path $path"

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
