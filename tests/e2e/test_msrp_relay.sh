#!/usr/bin/env bash
# MSRP through the worker, both ways, then the session timer ends it.
#
# sipp sets up one session whose SDPs point at two imsplit-msrp-peer
# processes: the client peer connects to the worker's client-leg path (from
# the CP's 200), the worker connects out to the controlling peer (its answer
# says a=setup:passive). Each peer then sends 10 x 100 B, 3 x 1 MiB in
# 64 KiB chunks and one 1 MiB message aborted with '#' after its first
# chunk, and checks every byte of what the other one sent (size, Byte-Range,
# content pattern, per-hop 200s, rewritten To-Path/From-Path). Nobody
# refreshes: at SE - SE/3 = 8 s the CP BYEs both sides, and on each 200 the
# worker must close that leg's connection: both peers wait for it
# (--wait-close). Nothing may be left on the worker afterwards.
T_WORKERS=1
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/msrp_lib.sh"
t_init msrp_relay
m_init

SE=12
MIB=1048576
# Same traffic each way; message numbers 0-9 small, 10-12 large, 13 aborted.
SEND=(--send 10 --size 100
      --send 3 --size $MIB --chunk 65536
      --send 1 --size $MIB --chunk 65536 --abort-after 1)
EXPECT=(--expect 10 --expect-size 100 --expect 3 --expect-size $MIB
        --expect-aborted 1)
# The transfers take well under a second; the peers then wait for the
# worker to close their connection at expiry (8 s) + margin.
PEER_MS=40000

t_start_stack --session-expires $SE --min-se 2
m_paths
# The controlling peer starts sending once the client's first chunk came
# through, so both legs are connected by then.
m_xpeer xpeer "${SEND[@]}" "${EXPECT[@]}" --send-after-recv --wait-close \
    --timeout-ms $PEER_MS
m_session client_msrp.xml ctrl_msrp.xml $SE
m_cpeer cpeer "${SEND[@]}" "${EXPECT[@]}" --wait-close --timeout-ms $PEER_MS

m_peer_wait cpeer $((PEER_MS / 1000 + 5))
m_peer_wait xpeer 10
t_expect_sipp_ok uac uas

# Each peer: everything sent was answered, everything expected arrived
# intact, and the worker (not the peer) closed the connection.
for p in cpeer xpeer; do
    m_expect $p sent -eq 13
    m_expect $p aborted_sent -eq 1
    m_expect $p received -eq 13
    m_expect $p aborted -eq 1
    m_expect $p bad -eq 0
    m_expect $p resp_err -eq 0
    m_expect $p path_err -eq 0
    m_expect $p proto_err -eq 0
    m_expect $p closed_by_peer -eq 1
    [[ ${T_RC_OF[$p]} == 0 ]] || t_fail "peer $p exited ${T_RC_OF[$p]}"
done

# The closes came from the expiry: after the BYE of that direction
# arrived, and the transfers were over before it.
bye_c=$(t_event uac bye)
bye_x=$(t_event uas bye)
[[ -n $bye_c && -n $bye_x ]] || t_fail "a side got no BYE"
[[ $(t_event_field uac bye reason) == *"cause=408"* ]] ||
    t_fail "client BYE Reason '$(t_event_field uac bye reason)', expected cause=408"
[[ $(t_event_field uas bye reason) == *"cause=408"* ]] ||
    t_fail "controlling BYE Reason '$(t_event_field uas bye reason)', expected cause=408"
for pair in "cpeer $bye_c" "xpeer $bye_x"; do
    read -r p bye <<<"$pair"
    done_ms=$(m_field $p done_real_ms)
    close_ms=$(m_field $p close_real_ms)
    awk -v d="$done_ms" -v b="$bye" 'BEGIN { exit !(d > 0 && d < b * 1000) }' ||
        t_fail "peer $p finished its work at $done_ms ms, not before the BYE ($bye)"
    awk -v c="$close_ms" -v b="$bye" 'BEGIN { exit !(c >= b * 1000 - 5) }' ||
        t_fail "peer $p was closed at $close_ms ms, before its leg's BYE ($bye)"
    t_log "ok: peer $p closed $(awk -v c="$close_ms" -v b="$bye" 'BEGIN { d = c - b * 1000; printf "%d", d < 0 ? -int(-d + 0.5) : int(d + 0.5) }') ms after its BYE"
done

# The CP released both directions on the 200s, and the worker's final
# counters came back non-zero and covering what the peers moved.
t_assert_log cp -eq 1 event=release_sent direction=client reason=bye_2xx
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_2xx
t_assert_log cp -eq 2 event=leg_usage status=ok
check_usage() { # DIR PEER
    local line in out
    line=$(grep -m1 "event=leg_usage .*dir=$1 " "$T_DIR/cp.log") || t_fail "no leg_usage for $1"
    in=$(sed -n 's/.* bytes_in=\([0-9]*\).*/\1/p' <<<"$line")
    out=$(sed -n 's/.* bytes_out=\([0-9]*\).*/\1/p' <<<"$line")
    # The leg reads what its peer wrote and writes what its peer reads:
    # at least the message bodies each way.
    t_cmp "$in" -ge "$(m_field "$2" payload_out)" && t_cmp "$in" -gt 0 ||
        t_fail "leg_usage $1 bytes_in=$in, below peer $2 payload_out=$(m_field "$2" payload_out)"
    t_cmp "$out" -ge "$(m_field "$2" payload_in)" && t_cmp "$out" -gt 0 ||
        t_fail "leg_usage $1 bytes_out=$out, below peer $2 payload_in=$(m_field "$2" payload_in)"
    t_log "ok: leg_usage $1 bytes_in=$in bytes_out=$out (peer $2 wrote $(m_field "$2" bytes_out), read $(m_field "$2" bytes_in))"
}
check_usage client cpeer
check_usage controlling xpeer

t_wait_metric up-1 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
t_assert_metric up-1 imsplit_up_legs_active -eq 0
t_assert_metric up-1 imsplit_up_sockets_open -eq 0
t_assert_metric up-1 imsplit_up_buffer_bytes -eq 0
payload=$(($(m_field cpeer payload_out) + $(m_field xpeer payload_out)))
t_assert_metric up-1 imsplit_up_msrp_bytes_relayed_total -gt "$payload"

t_finish
