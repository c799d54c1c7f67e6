#!/usr/bin/env bash
# Hostile control channel, raw ZMTP 3.0 from zmtp_raw.py (no libzmq on the
# test's side, so it can send what a ZeroMQ socket never would):
#  (a) towards the real CP, as a DEALER: an empty frame, garbage, a
#      truncated envelope, no body, a body this version does not know, two
#      frames in one message (each counted by kind, never answered); major 2
#      (ErrorReply UNSUPPORTED_VERSION); unknown fields (ignored); an
#      unknown query kind; worker messages from an unregistered peer and
#      from a stale epoch (NOT_REGISTERED); a command the CP never accepts
#      (UNKNOWN_BODY); a Register whose node_id is not the routing id;
#      results for commands never sent, and a LegEvent for no session, from
#      a registered fake worker; a routing id over 63 bytes; a frame above
#      ZMQ_MAXMSGSIZE (the connection is dropped, the CP carries on);
#  (b) towards a real worker, as its CP (a ROUTER it connects to): a
#      RegisterAck with epoch 0, the same junk frames, ReleaseLeg and
#      ConnectLeg before AllocateLeg (NOT_FOUND), AllocateLeg without a
#      direction (bad_field, not answered), major 7, a body a worker never accepts,
#      unknown fields, a seq reused for another command, a stale seq, a
#      command from another CP epoch (NOT_REGISTERED, the worker registers
#      again), a frame above ZMQ_MAXMSGSIZE (the worker reconnects).
# Each daemon must stay up, count every rejected frame under the right
# kind, and hold no leg at the end.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../lib/ctl_lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/hostile_lib.sh"
t_init ctl_hostile
RAW=$IMSPLIT_SRC_DIR/tests/hostile/zmtp_raw.py

# perr WHO KIND: imsplit_WHO_protocol_errors_total{kind="KIND"}.
perr() {
    local who=$1 prefix=cp
    [[ $who == up-* ]] && prefix=up
    t_metric "$who" "imsplit_${prefix}_protocol_errors_total{kind=\"$2\"}"
}
# raw_run NAME MODE ADDR: zmtp_raw.py, output in NAME.out; fails the test on
# any "bad" case.
raw_run() {
    local name=$1
    shift
    local rc=0
    timeout 60 python3 "$RAW" "$@" >"$T_DIR/$name.out" 2>"$T_DIR/$name.err" || rc=$?
    sed "s/^/[$name] /" "$T_DIR/$name.out"
    while read -r _ c detail; do
        t_log "KNOWN: $c: $detail"
    done < <(grep '^known ' "$T_DIR/$name.out" || true)
    if ((rc != 0)); then
        cat "$T_DIR/$name.err" >&2
        t_fail "$name: zmtp_raw.py $* exited $rc"
    fi
}

t_log "(a) the CP"
t_ctl_start_cp --log-level debug
raw_run to_cp cp "$T_HOST:$T_CTL_PORT"
t_check_daemons
for kind in empty malformed no_body extra_frames version unexpected_body bad_routing_id; do
    v=$(perr cp $kind)
    t_cmp "$v" -ge 1 || t_fail "cp protocol_errors{kind=$kind} = $v, expected >= 1"
done
t_assert_metric cp 'imsplit_cp_protocol_errors_total{kind="empty"}' -eq 1
t_assert_metric cp 'imsplit_cp_protocol_errors_total{kind="extra_frames"}' -eq 1
t_assert_metric cp 'imsplit_cp_protocol_errors_total{kind="version"}' -eq 1
t_assert_metric cp 'imsplit_cp_protocol_errors_total{kind="not_registered"}' -eq 3
t_assert_metric cp 'imsplit_cp_protocol_errors_total{kind="unexpected_body"}' -eq 1
t_assert_metric cp 'imsplit_cp_protocol_errors_total{kind="bad_field"}' -eq 1
t_assert_metric cp 'imsplit_cp_protocol_errors_total{kind="bad_routing_id"}' -eq 1
# The garbage, the truncated envelope: malformed; no body and an unknown
# body: no_body.
t_assert_metric cp 'imsplit_cp_protocol_errors_total{kind="malformed"}' -eq 2
t_assert_metric cp 'imsplit_cp_protocol_errors_total{kind="no_body"}' -eq 2
h_assert_log cp -eq 1 event=protocol_error kind=empty
h_assert_log cp -ge 1 event=unregistered_peer peer=hostile-1 body=heartbeat
t_assert_metric cp imsplit_cp_workers_left_total -eq 1
t_assert_metric cp imsplit_cp_sessions_active -eq 0
t_assert_metric cp imsplit_cp_releases_pending -eq 0
rows=$(t_ctl_session_rows) || t_fail "imsplit-ctl sessions failed"
[[ $rows == 0 ]] || t_fail "the CP lists $rows sessions"
t_stop cp TERM 8
[[ ${T_RC_OF[cp]} == 0 ]] || t_fail "the CP exited ${T_RC_OF[cp]} on SIGTERM"
t_log "ok: the CP exited 0"

t_log "(b) a worker"
read -r FAKE_PORT UP_MPORT <<<"$(t_free_ports 2)" || t_fail "no free ports"
t_ctl_spawn fake_cp timeout 90 python3 "$RAW" worker "127.0.0.1:$FAKE_PORT"
t_wait_listen "$FAKE_PORT" tcp 10 || t_fail "the fake CP does not listen"
t_ctl_start_up up-1 "tcp://127.0.0.1:$FAKE_PORT" "$UP_MPORT"
t_wait_exit fake_cp 60 || t_fail "the fake CP did not finish its cases"
sed 's/^/[fake_cp] /' "$T_DIR/fake_cp.out"
while read -r _ c detail; do
    t_log "KNOWN: $c: $detail"
done < <(grep '^known ' "$T_DIR/fake_cp.out" || true)
[[ ${T_RC_OF[fake_cp]} == 0 ]] || t_fail "fake CP cases failed (exit ${T_RC_OF[fake_cp]})"
t_check_daemons
# The RegisterAck with epoch 0 and the AllocateLeg without a direction.
t_assert_metric up-1 'imsplit_up_protocol_errors_total{kind="bad_field"}' -eq 2
t_assert_metric up-1 'imsplit_up_protocol_errors_total{kind="empty"}' -eq 1
t_assert_metric up-1 'imsplit_up_protocol_errors_total{kind="malformed"}' -eq 2
t_assert_metric up-1 'imsplit_up_protocol_errors_total{kind="no_body"}' -eq 1
t_assert_metric up-1 'imsplit_up_protocol_errors_total{kind="extra_frames"}' -eq 1
t_assert_metric up-1 'imsplit_up_protocol_errors_total{kind="version"}' -eq 1
t_assert_metric up-1 'imsplit_up_protocol_errors_total{kind="unexpected_body"}' -eq 1
t_assert_metric up-1 'imsplit_up_protocol_errors_total{kind="not_registered"}' -eq 1
t_assert_metric up-1 'imsplit_up_protocol_errors_total{kind="seq_reused"}' -eq 1
h_assert_log up-1 -eq 1 event=command_refused why=not_registered
t_ctl_finish_up
