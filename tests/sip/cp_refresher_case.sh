# Body of test_cp_refresher.sh / test_cp_refresher_reinvite.sh (sourced
# after lib.sh with REFRESH set to "update" or "reinvite").
#
# The controlling side makes the CP the refresher of its leg
# ("Session-Expires: 6;refresher=uac"). With UPDATE in its Allow the CP must
# send an UPDATE every SE/2 = 3 s; without it, a re-INVITE carrying the
# CP's previous SDP, whose 200 the CP ACKs. Each carries "Session-Expires:
# 6;refresher=uac". The client leg (SE 12, client refreshes, so it would
# expire at 8 s) is ended by the client's BYE at 7 s, after the second
# refresh.

CTRL_SE=6
CLIENT_SE=12
case $REFRESH in
update) scenario=ctrl_refresher.xml method=UPDATE ;;
reinvite) scenario=ctrl_refresher_reinvite.xml method=INVITE ;;
*) t_fail "REFRESH must be update or reinvite, not '$REFRESH'" ;;
esac

t_start_stack --session-expires $CLIENT_SE --min-se 2
t_sipp_uas uas "$scenario" -key se $CTRL_SE
t_sipp_uac uac client_bye.xml -key se $CLIENT_SE -d 7000
t_expect_sipp_ok uac uas

half_ms=$((CTRL_SE * 1000 / 2))
t_assert_near "ACK of the 200 -> first $method (ms)" \
    "$(t_diff_ms "$(t_event uas acked)" "$(t_event uas ${REFRESH}1)")" $half_ms 250
t_assert_near "first -> second $method (ms)" \
    "$(t_diff_ms "$(t_event uas ${REFRESH}1)" "$(t_event uas ${REFRESH}2)")" $half_ms 250
for n in 1 2; do
    se=$(t_event_field uas $REFRESH$n se)
    [[ $se =~ ^$CTRL_SE[[:space:]]*\;[[:space:]]*refresher=uac$ ]] ||
        t_fail "$method $n has Session-Expires '$se', expected '$CTRL_SE;refresher=uac'"
done
t_assert_log cp -eq 2 event=refresh_sent dir=controlling method=$method

if [[ $REFRESH == reinvite ]]; then
    # The re-INVITE offers the same SDP the CP sent in the initial INVITE.
    init_path=$(t_event_field uas invite path)
    for n in 1 2; do
        [[ $(t_event_field uas reinvite$n path) == "$init_path" ]] ||
            t_fail "re-INVITE $n path '$(t_event_field uas reinvite$n path)' differs from '$init_path'"
    done
    [[ -n $(t_event uas reinvite_acked 2) ]] || t_fail "the CP did not ACK both re-INVITE 200s"
    t_log "ok: both re-INVITEs carried path $init_path and were ACKed"
fi

t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 0
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq 1
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_assert_log cp -eq 1 event=release_sent direction=client reason=peer_bye
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_2xx

t_finish
