#!/usr/bin/env bash
# The client hangs up while a large message is streaming towards it.
#
# The controlling peer sends one 50 MiB message in 64 KiB chunks at 10 MB/s
# (about 5 s) to the client peer; 1.5 s after the ACK the client sipp sends
# BYE. The CP answers it and releases the client direction: the worker must
# close the client peer's connection there and then, in the middle of the
# message, without crashing. The controlling side's BYE is answered 400 ms
# late: its connection must stay until that 200 and be closed right after
# (each direction is released on its own BYE's answer). Everything the
# client peer did receive must be intact, and nothing may be left.
T_WORKERS=1
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/msrp_lib.sh"
t_init msrp_release_midstream
m_init

SE=60
BIG=$((50 * 1048576))
RATE=10000000
HOLD_MS=1500
BYE_DELAY_MS=400 # under the CP's T1 (500 ms), so the BYE is not resent
PEER_MS=30000

t_start_stack --session-expires $SE --min-se 2
m_paths
# The controlling peer starts once the client's small message came through
# (both legs are connected then) and also checks that one.
m_xpeer xpeer --send 1 --size $BIG --chunk 65536 --rate $RATE \
    --expect 1 --expect-size 100 --send-after-recv --wait-close \
    --timeout-ms $PEER_MS
m_session client_msrp_bye.xml ctrl_msrp.xml $SE -d $HOLD_MS -- -d $BYE_DELAY_MS
m_cpeer cpeer --send 1 --size 100 --expect 1 --expect-size $BIG --wait-close \
    --timeout-ms $PEER_MS

m_peer_wait cpeer $((PEER_MS / 1000 + 5))
m_peer_wait xpeer 10
t_expect_sipp_ok uac uas
t_check_daemons

# The client peer was cut off in the middle of the message: some of it
# arrived, all of that intact, and the worker closed the connection.
m_expect cpeer sent -eq 1
m_expect cpeer received -eq 0
m_expect cpeer payload_in -gt 0
m_expect cpeer payload_in -lt $BIG
m_expect cpeer bad -eq 0
m_expect cpeer path_err -eq 0
m_expect cpeer proto_err -eq 0
m_expect cpeer closed_by_peer -eq 1
# The controlling peer got the client's message and was closed before its
# own 50 MiB were out.
m_expect xpeer received -eq 1
m_expect xpeer bad -eq 0
m_expect xpeer sent -eq 0
m_expect xpeer closed_by_peer -eq 1

# Timing of the two closes against the SIP events (epoch ms).
bye_sent=$(t_event uac bye_sent)
bye_done=$(t_event uac bye_done)
x_bye=$(t_event uas bye)
x_answered=$(t_event uas bye_answered)
[[ -n $bye_sent && -n $bye_done && -n $x_bye && -n $x_answered ]] ||
    t_fail "missing SIP events (bye_sent=$bye_sent bye_done=$bye_done uas bye=$x_bye answered=$x_answered)"
[[ -z $(t_event_field uas bye reason) ]] ||
    t_fail "the BYE relayed to the controlling side carries Reason '$(t_event_field uas bye reason)'"
c_close=$(m_field cpeer close_real_ms)
x_close=$(m_field xpeer close_real_ms)
delta() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a - b * 1000 }'; } # ms - s
t_log "client: 200 to its BYE after $(t_diff_ms "$bye_sent" "$bye_done") ms," \
    "connection closed $(delta "$c_close" "$bye_sent") ms after the BYE"
t_log "controlling: BYE answered after $(t_diff_ms "$x_bye" "$x_answered") ms," \
    "connection closed $(delta "$x_close" "$x_answered") ms after the 200"
awk -v c="$c_close" -v b="$bye_sent" 'BEGIN { exit !(c >= b * 1000 - 5 && c <= b * 1000 + 1000) }' ||
    t_fail "client peer closed at $c_close, not within 1 s after its BYE ($bye_sent)"
awk -v c="$x_close" -v a="$x_answered" 'BEGIN { exit !(c >= a * 1000 - 5) }' ||
    t_fail "controlling peer closed at $x_close, before its BYE was answered ($x_answered)"
awk -v c="$x_close" -v a="$x_answered" 'BEGIN { exit !(c <= a * 1000 + 1000) }' ||
    t_fail "controlling peer closed at $x_close, more than 1 s after its BYE was answered ($x_answered)"
awk -v x="$x_close" -v c="$c_close" -v d=$BYE_DELAY_MS 'BEGIN { exit !(x - c >= d - 50) }' ||
    t_fail "controlling closed $((x_close - c_close)) ms after the client: it did not wait for its own BYE's answer"

t_assert_log cp -eq 1 event=release_sent direction=client reason=peer_bye
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_2xx
t_wait_metric up-1 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
t_assert_metric up-1 imsplit_up_legs_active -eq 0
t_assert_metric up-1 imsplit_up_sockets_open -eq 0
t_assert_metric up-1 imsplit_up_buffer_bytes -eq 0
t_assert_metric up-1 imsplit_up_msrp_bytes_relayed_total -ge "$(m_field cpeer payload_in)"

t_finish
