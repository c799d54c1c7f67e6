# Body of test_refresh_update.sh / test_refresh_reinvite.sh (sourced after
# lib.sh with REFRESH set to "update" or "reinvite").
#
# The IM Client refreshes its leg every SE/2, by UPDATE or by re-INVITE with
# the same SDP. Each refresh is answered 200 with Session-Expires by the CP
# (a re-INVITE with the CP's previous SDP for that leg, then ACKed) and is
# not forwarded: the controlling scenario fails on any request but the
# final BYE. The session outlives SE; the client's BYE ends it normally.

case $REFRESH in
update) scenario=client_refresh_update.xml method=UPDATE ;;
reinvite) scenario=client_refresh_reinvite.xml method=re-INVITE ;;
*) t_fail "REFRESH must be update or reinvite, not '$REFRESH'" ;;
esac

SE=6
t_start_stack --session-expires $SE --min-se 2
t_sipp_uas uas ctrl_answer.xml
t_sipp_uac uac "$scenario" -key se $SE -d $((SE * 1000 / 2))
t_expect_sipp_ok uac uas

lived=$(t_diff_ms "$(t_event uac answered)" "$(t_event uac bye_done)")
t_cmp "$lived" -gt $((SE * 1000)) || t_fail "session lived ${lived} ms, expected more than SE"
t_log "ok: session lived ${lived} ms with SE ${SE}s"
for n in 1 2; do
    se=$(t_event_field uac refreshed$n se)
    [[ $se =~ ^$SE\;[[:space:]]*refresher=uac$ ]] ||
        t_fail "200 to $method $n has Session-Expires '$se', expected '$SE;refresher=uac'"
done
if [[ $REFRESH == reinvite ]]; then
    path=$(t_event_field uac answered path)
    for n in 1 2; do
        rpath=$(t_event_field uac refreshed$n path)
        [[ $rpath == "$path" ]] ||
            t_fail "re-INVITE $n answered with path '$rpath', expected the original '$path'"
    done
    t_log "ok: re-INVITEs answered with the original path $path"
fi

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
