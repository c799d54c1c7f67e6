#!/usr/bin/env bash
# Hostile SIP towards the CP, over UDP and TCP, from sip_raw.py (hand-made
# messages; the controlling side is sipp, tests/fault/ctrl_hold.xml):
#  - RFC 4028: Session-Expires below Min-SE and zero (422 with Min-SE),
#    above 2^32 (granted, capped at --session-expires), repeated and
#    malformed (400 from the stack), an unknown refresher (ignored), Min-SE
#    above Session-Expires and above 2^32 (422 with that Min-SE, capped at
#    2^32-1); UPDATE below Min-SE in a dialog (422);
#  - offers: no body, a non-SDP body, m=audio, no a=path, unparsable SDP
#    (488 with a Warning);
#  - BYE, UPDATE and re-INVITE outside any dialog (481);
#  - re-INVITE that changes the MSRP path, drops it, or offers m=audio: the
#    CP cannot move the session, so it must refuse (488) and keep the
#    session as it was;
#  - RFC 4475-style torture: Content-Length too large, huge, negative or
#    twice; headers never terminated; escaped and %00 URIs; <> around the
#    Request-URI; an unknown scheme; a CSeq method that is not the
#    request's; a 30 kB header; binary garbage; an INVITE above the
#    stack's 2 MiB limit (413 on TCP) and a near-maximal datagram (within
#    it: the call goes through);
#  - a TCP connection that sends half a request and stops: the CP should
#    not hold it for ever.
# After each group the daemons must be alive; at the end nothing is left.
T_WORKERS=1
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/hostile_lib.sh"
t_init sip_hostile
RAW=$IMSPLIT_SRC_DIR/tests/hostile/sip_raw.py

t_start_stack --session-expires 30 --min-se 10
t_sipp_uas uas "$IMSPLIT_SRC_DIR/tests/fault/ctrl_hold.xml" -key se 30 -m 100

# sip NAME=TRANSPORT:CASE[:WAIT[:ARG...]]...: sip_raw.py cases in turn, each
# case's key=value lines in $T_DIR/NAME.out.
sip() {
    timeout 90 python3 "$RAW" --cp "$T_HOST:$T_SIP_PORT" --outdir "$T_DIR" "$@" \
        2>"$T_DIR/sip_raw.err" || t_fail "sip_raw.py $*: $(cat "$T_DIR/sip_raw.err")"
}
# field NAME KEY: the value of KEY= in NAME.out ("" if absent).
field() { sed -n "s/^$2=//p" "$T_DIR/$1.out" | head -n1; }
# expect NAME KEY=VALUE...
expect() {
    local name=$1 kv
    shift
    for kv in "$@"; do
        [[ $(field "$name" "${kv%%=*}") == "${kv#*=}" ]] ||
            t_fail "$name: ${kv%%=*}='$(field "$name" "${kv%%=*}")', expected '${kv#*=}' ($(paste -sd' ' "$T_DIR/$name.out"))"
    done
    t_log "ok: $name: $*"
}

# Half a request on TCP, left open; looked at again at the end.
cat >"$T_DIR/half.py" <<'PY'
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b"INVITE sip:conf@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-half\r\n")
t0 = time.monotonic()
s.settimeout(15)
try:
    s.recv(100)
    print("closed_after_s=%.1f" % (time.monotonic() - t0), flush=True)
except socket.timeout:
    print("open_after_s=%.1f" % (time.monotonic() - t0), flush=True)
PY
t_spawn half_tcp python3 "$T_DIR/half.py" "$T_HOST" "$T_SIP_PORT"

t_log "RFC 4028 headers"
sip se_low=udp:se_below_min se_zero=tcp:se_zero min_above=udp:min_se_above_se \
    min_huge=tcp:min_se_huge se_huge=udp:se_huge se_digits=tcp:se_huge_digits \
    se_refr=udp:se_bad_refresher se_rep=udp:se_repeated se_bad=tcp:se_malformed \
    upd_low=udp:update_se_below_min
expect se_low status=422 min_se=10
expect se_zero status=422 min_se=10
expect min_above status=422 min_se=25
expect min_huge status=422 min_se=4294967295
# Above 2^32: granted, capped at --session-expires; an unknown refresher
# is ignored (the UAC refreshes).
expect se_huge status=200 session_expires="30;refresher=uac" bye_status=200
expect se_digits status=200 session_expires="30;refresher=uac" bye_status=200
expect se_refr status=200 session_expires="20;refresher=uac" bye_status=200
# Repeated and malformed Session-Expires: the stack refuses the request.
expect se_rep status=400
expect se_bad status=400
expect upd_low update_status=422 update_min_se=10 bye_status=200
t_assert_metric cp "imsplit_cp_sip_responses_total{direction=\"sent\",code=\"422\"}" -eq 5
h_assert_log cp -eq 1 event=invite_rejected status=422 min_se=10 se=5
h_assert_log cp -eq 1 event=invite_rejected status=422 min_se=10 se=0
h_assert_log cp -eq 1 event=refresh_rejected dir=client status=422 min_se=10
t_check_daemons

t_log "offers"
sip no_sdp=udp:no_sdp ctype=tcp:wrong_content_type audio=udp:audio_mline \
    no_path=tcp:no_path garbage_sdp=udp:garbage_sdp
expect no_sdp status=488 warning='399 imsplit "INVITE has no SDP offer"'
expect ctype status=488 warning='399 imsplit "INVITE has no SDP offer"'
expect audio status=488 warning='399 imsplit "no active m=message TCP/MSRP line"'
expect no_path status=488 warning='399 imsplit "MSRP m-line has no a=path"'
expect garbage_sdp status=488
t_assert_metric cp "imsplit_cp_sip_responses_total{direction=\"sent\",code=\"488\"}" -eq 5
t_assert_metric cp 'imsplit_cp_invites_rejected_total{why="interval_too_small"}' -eq 4
t_assert_metric cp 'imsplit_cp_invites_rejected_total{why="no_sdp_offer"}' -eq 2
t_assert_metric cp 'imsplit_cp_invites_rejected_total{why="bad_sdp_offer"}' -eq 3
h_assert_log cp -eq 2 event=invite_rejected status=488 why=no_sdp_offer

t_log "requests outside any dialog"
sip bye_udp=udp:bye_unknown upd_udp=udp:update_unknown reinv_udp=udp:reinvite_unknown \
    bye_tcp=tcp:bye_unknown upd_tcp=tcp:update_unknown reinv_tcp=tcp:reinvite_unknown
for n in bye_udp upd_udp reinv_udp bye_tcp upd_tcp reinv_tcp; do expect $n status=481; done
t_assert_metric cp "imsplit_cp_sip_responses_total{direction=\"sent\",code=\"481\"}" -eq 6
t_check_daemons

t_log "re-INVITE that changes the media"
sip path_changed=udp:reinvite_path_changed path_missing=udp:reinvite_path_missing \
    reinv_audio=tcp:reinvite_audio
for c in path_changed path_missing reinv_audio; do
    [[ $(field $c bye_status) == 200 ]] || t_fail "$c: the session did not end with BYE 200"
    expect $c reinvite_status=488
done
t_check_daemons

t_log "RFC 4475-style torture"
specs=()
for tp in udp tcp; do
    specs+=(cl_neg_$tp=$tp:cl_negative cl_two_$tp=$tp:cl_multiple
        cl_huge_$tp=$tp:cl_huge ltgt_$tp=$tp:ltgt_ruri cseq_$tp=$tp:bad_cseq
        esc_$tp=$tp:escaped_ruri long_$tp=$tp:long_header
        scheme_$tp=$tp:bad_ruri_scheme:1 junk_$tp=$tp:garbage:1)
done
sip "${specs[@]}" cl_big_udp=udp:cl_too_big cl_big_tcp=tcp:cl_too_big:1 \
    unterm_udp=udp:unterminated unterm_tcp=tcp:unterminated:1
for tp in udp tcp; do
    for n in cl_neg cl_two cl_huge ltgt cseq; do expect ${n}_$tp status=400; done
    # Escaped URIs and a 30 kB header are legal: the call goes through.
    expect esc_$tp status=200 bye_status=200
    expect long_$tp status=200 bye_status=200
    # Nothing to answer: dropped.
    expect scheme_$tp status=none
    expect junk_$tp status=none
done
# A datagram is the whole message: a body shorter than Content-Length is
# an error, and a datagram without the blank line a request without a
# body; on TCP the stack waits for the rest.
expect cl_big_udp status=400
expect cl_big_tcp status=none
expect unterm_udp status=488
expect unterm_tcp status=none
t_check_daemons

t_log "oversized requests"
# 3 MiB on TCP is above the stack's 2 MiB message limit: 413. Near the
# largest datagram is within it: the call goes through.
sip big_tcp=tcp:oversize::3145728 big_udp=udp:oversize::60000
expect big_tcp status=413
expect big_udp status=200 bye_status=200
t_check_daemons

t_log "half a request on TCP"
t_wait_exit half_tcp 20 || t_fail "the half-request client hangs"
if grep -q '^open_after_s=' "$T_DIR/half_tcp.log"; then
    t_fail "a TCP connection holding half a request is still open after 15 s (the CP closes it after 10 s)"
fi
t_log "ok: half request: $(cat "$T_DIR/half_tcp.log")"

t_check_daemons
t_wait_metric cp imsplit_cp_sessions_active -eq 0 10 || t_fail "sessions left"
t_finish
