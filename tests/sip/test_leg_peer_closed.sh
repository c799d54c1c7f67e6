#!/usr/bin/env bash
# The IM Client's MSRP connection goes away mid-session: the worker reports
# LegEvent(PEER_CLOSED) and the CP ends the IM session like any other, BYE
# on both legs (no session-timer Reason), each direction released on the
# answer to its own BYE. The client connects to the worker's client-leg
# path from the 200's SDP, binds the leg with an empty SEND (RFC 4975),
# checks the per-hop 200, and closes the connection.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init leg_peer_closed

SE=30 # long enough that no session timer is involved
t_start_stack --session-expires $SE --min-se 2
t_sipp_uas uas ctrl_answer.xml
t_sipp_uac uac client_leg_drop.xml -key se $SE

path=""
for _ in $(seq 1 100); do
    path=$(t_event_field uac answered path)
    [[ -n $path ]] && break
    sleep 0.05
done
[[ $path =~ ^msrp://([0-9.]+):([0-9]+)/([A-Za-z0-9]+)\;tcp$ ]] ||
    t_fail "no usable client-leg path in the 200 ('$path')"
host=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
t_log "client leg path $path"

exec 3<>"/dev/tcp/$host/$port" || t_fail "cannot connect to $host:$port"
printf 'MSRP tdrop1 SEND\r\nTo-Path: %s\r\nFrom-Path: msrp://127.0.0.1:2855/cdrop;tcp\r\nMessage-ID: m1\r\nByte-Range: 1-0/0\r\n-------tdrop1$\r\n' \
    "$path" >&3
reply=""
IFS= read -r -t 5 reply <&3 || true
[[ $reply == $'MSRP tdrop1 200 OK\r' ]] || t_fail "bind SEND answered '$reply', expected 'MSRP tdrop1 200 OK'"
t_log "ok: leg bound by the empty SEND, per-hop 200 received"
t_wait_metric up imsplit_up_sockets_open -eq 1 5 ||
    t_fail "the worker does not hold the client leg's connection"
exec 3<&- 3>&-

t_expect_sipp_ok uac uas
t_assert_log cp -eq 1 event=leg_event dir=client kind=peer_closed
t_assert_log cp -eq 1 event=bye_sent leg=client cause=leg_event
t_assert_log cp -eq 1 event=bye_sent leg=controlling cause=leg_event
t_assert_log cp -eq 1 event=release_sent direction=client reason=bye_2xx cause=leg_event
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_2xx cause=leg_event
t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 0
t_finish
