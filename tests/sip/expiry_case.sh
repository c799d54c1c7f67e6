# Body of test_expiry_udp.sh / test_expiry_tcp.sh (sourced after lib.sh with
# T_TRANSPORT set): nobody refreshes, the CP's session timer expires.
#
# Client: "Session-Expires: 6" + "Supported: timer" -> client leg SE 6 with
# the client as refresher. Controlling side: "Session-Expires: 6;
# refresher=uas" -> it is the refresher of that leg. Neither refreshes, so
# the CP must send both BYEs at SE - min(32, SE/3) = 4 s after the 2xx
# (RFC 4028 10), each with the 408 Reason, and release each direction on
# the 200 to its BYE.

SE=6
EXPECT_MS=$(awk -v se=$SE 'BEGIN { m = se / 3; if (m > 32) m = 32; print (se - m) * 1000 }')
TOL_MS=$((100 * T_SLOW)) # wider only under valgrind (tests/lib/lib.sh)

t_start_stack --session-expires $SE --min-se 2
t_sipp_uas uas ctrl_expiry.xml -key se $SE
t_sipp_uac uac client_expiry.xml -key se $SE
t_expect_sipp_ok uac uas

# Timing, measured on each side from the 2xx that started the timer to the
# BYE's arrival: on the client from the 200 it received, on the controlling
# side from the CP's ACK (sent as soon as the CP has the 200).
t_assert_near "client: 200 -> BYE (ms)" \
    "$(t_diff_ms "$(t_event uac answered)" "$(t_event uac bye)")" "$EXPECT_MS" $TOL_MS
t_assert_near "controlling: ACK -> BYE (ms)" \
    "$(t_diff_ms "$(t_event uas acked)" "$(t_event uas bye)")" "$EXPECT_MS" $TOL_MS

# What was negotiated: the client leg's 200 names the client as refresher
# and requires the timer.
se_hdr=$(t_event_field uac answered se)
[[ $se_hdr =~ ^$SE\;[[:space:]]*refresher=uac$ ]] ||
    t_fail "client 200 Session-Expires is '$se_hdr', expected '$SE;refresher=uac'"
t_log "ok: client 200 has Session-Expires: $se_hdr"
inv_se=$(t_event_field uas invite se)
[[ $inv_se =~ ^$SE([[:space:]]*\;.*)?$ ]] ||
    t_fail "INVITE to controlling has Session-Expires '$inv_se', expected $SE"
[[ $(t_event_field uas invite supported) == *timer* ]] ||
    t_fail "INVITE to controlling lacks Supported: timer"

t_assert_metric cp imsplit_cp_sessions_total -eq 1
t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 1
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq 1
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_wait_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric up imsplit_up_legs_allocated_total -eq 2
t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1

t_assert_log cp -eq 1 event=session_timer_expired
t_assert_log cp -eq 1 event=bye_sent leg=client
t_assert_log cp -eq 1 event=bye_sent leg=controlling
t_assert_log cp -eq 1 event=release_sent direction=client reason=bye_2xx
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_2xx

t_finish
