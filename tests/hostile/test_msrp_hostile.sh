#!/usr/bin/env bash
# Hostile MSRP against a worker's listener, with legs allocated by real
# sessions: sipp sets up SESSIONS client sessions (the controlling side
# answers a=setup:active, so the worker waits on both legs), and
# msrp_raw.py talks raw TCP to the client legs' paths.
#
# Unbound connections (the first frame names the leg, or fails to):
# unknown session (481), a To-Path whose last hop is another host (481: no
# relaying), a To-Path that is not MSRP (400), a first frame that is not a
# SEND or is a response, non-MSRP bytes, huge and negative Byte-Ranges, a
# bad end-line flag, an end-line with another transaction id, an oversized
# header block: each is closed without binding the leg, counted in
# imsplit_up_msrp_rejected_total or imsplit_up_msrp_framing_errors_total,
# and logged. A connection that never sends its first SEND, and one that
# sends it a byte a second, are closed at the worker's fixed bind deadline
# (UP_MSRP_BIND_MS, 10 s: there is no flag for it).
#
# Bound connections (the leg took the connection, then the peer
# misbehaves): huge or negative Byte-Range, bad end-line flag, end-line
# with another transaction id (framing errors: the connection is closed,
# the CP hears peer_closed and ends the session); a Byte-Range past
# --max-msg (413, connection kept); a SEND naming another session (481 per
# hop) and an unknown method (501), connection kept; a chunk whose end-line
# never comes (bounded by --leg-idle-ms: the leg is reported idle and the
# session ends). Every session is gone at the end, nothing leaks.
T_WORKERS=1
T_UP_ARGS=(--txn-timeout-ms 1000 --max-msg 65536 --leg-idle-ms 2500)
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/msrp_lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/hostile_lib.sh"
t_init msrp_hostile
RAW=$IMSPLIT_SRC_DIR/tests/hostile/msrp_raw.py

SESSIONS=8
t_start_stack --session-expires 60 --min-se 2
m_paths
t_sipp_uas uas "$IMSPLIT_SRC_DIR/tests/fault/ctrl_hold.xml" -key se 60 -m $SESSIONS
t_sipp_uac uac client_msrp.xml -key se 60 -key cpath "$M_CPATH" \
    -m $SESSIONS -l $SESSIONS -r $SESSIONS

for ((i = 0; i < 200; i++)); do
    [[ $(t_event_count uac answered) -ge $SESSIONS ]] && break
    t_check_daemons
    sleep 0.05
done
mapfile -t PATHS < <(grep '^ev=answered ' "$T_DIR/uac.events" |
    sed -n 's/.* path=\(msrp:[^ ]*\) t=.*/\1/p')
((${#PATHS[@]} == SESSIONS)) || t_fail "${#PATHS[@]} of $SESSIONS sessions answered"
t_assert_metric up-1 imsplit_up_legs_active -eq $((2 * SESSIONS))
t_log "$SESSIONS sessions up, client legs ${PATHS[*]}"

# raw NAME PATH CASE [ARGS]: one msrp_raw.py case, output in $T_DIR/NAME.out.
raw() {
    local name=$1 path=$2
    shift 2
    timeout 40 python3 "$RAW" --path "$path" "$@" >"$T_DIR/$name.out" 2>"$T_DIR/$name.err" ||
        t_fail "msrp_raw.py $* failed: $(cat "$T_DIR/$name.err")"
}
# out_is NAME LINE...: NAME.out has exactly these lines (closed=1 matches
# "closed=1 after_ms=N").
out_is() {
    local name=$1 got
    shift
    got=$(sed 's/^closed=1 after_ms=.*/closed=1/' "$T_DIR/$name.out" | paste -sd' ')
    [[ $got == "$*" ]] || t_fail "$name: got '$got', expected '$*'"
    t_log "ok: $name: $got"
}

# The silent and the slow connection run meanwhile; both name session 0.
timeout 40 python3 "$RAW" --path "${PATHS[0]}" silent 16 >"$T_DIR/silent.out" 2>&1 &
SILENT_PID=$!
timeout 40 python3 "$RAW" --path "${PATHS[0]}" slowloris_unbound 16 >"$T_DIR/slow.out" 2>&1 &
SLOW_PID=$!

t_log "unbound connections"
rej0=$(t_metric up-1 imsplit_up_msrp_rejected_total)
fr0=$(t_metric up-1 imsplit_up_msrp_framing_errors_total)
P=${PATHS[0]}
raw u_unknown "$P" unknown_session && out_is u_unknown resp=481 closed=1
raw u_foreign "$P" foreign_last_hop && out_is u_foreign resp=481 closed=1
raw u_badto "$P" bad_to_path && out_is u_badto resp=400 closed=1
raw u_report "$P" first_not_send && out_is u_report closed=1
raw u_resp "$P" first_is_response && out_is u_resp closed=1
raw u_garbage "$P" garbage && out_is u_garbage closed=1
raw u_hugerange "$P" huge_range_unbound && out_is u_hugerange resp=none closed=1
raw u_negrange "$P" negative_range_unbound && out_is u_negrange resp=none closed=1
raw u_flag "$P" bad_flag_unbound && out_is u_flag resp=none closed=1
raw u_tid "$P" tid_mismatch_unbound && out_is u_tid resp=none closed=1
raw u_flood "$P" header_flood_unbound && out_is u_flood closed=1
t_check_daemons
h_assert_log up-1 -eq 2 event=msrp_conn_rejected code=481 why=unknown_session
h_assert_log up-1 -eq 1 event=msrp_conn_rejected code=400 why=bad_to_path
h_assert_log up-1 -eq 2 event=msrp_conn_closed why=first_frame_not_send
h_assert_log up-1 -eq 1 event=msrp_framing_error why=bad_start_line
h_assert_log up-1 -eq 2 event=msrp_framing_error why=bad_byte_range
h_assert_log up-1 -eq 1 event=msrp_framing_error why=bad_end_line_flag
h_assert_log up-1 -eq 1 event=msrp_framing_error why=end_line_tid_mismatch
h_assert_log up-1 -eq 1 event=msrp_framing_error why=header_too_large
t_assert_metric up-1 imsplit_up_msrp_rejected_total -ge $((rej0 + 5))
t_assert_metric up-1 imsplit_up_msrp_framing_errors_total -eq $((fr0 + 6))
# None of that bound a leg or ended a session.
t_assert_metric up-1 imsplit_up_legs_active -eq $((2 * SESSIONS))
t_assert_metric cp imsplit_cp_sessions_active -eq $SESSIONS
h_assert_log up-1 -eq 0 event=leg_bound

t_log "bound connections that break the framing: closed, session ended"
raw b_hugerange "${PATHS[1]}" huge_range_bound && out_is b_hugerange resp=200 resp=none closed=1
raw b_negrange "${PATHS[2]}" negative_range_bound && out_is b_negrange resp=200 resp=none closed=1
raw b_flag "${PATHS[3]}" bad_flag_bound && out_is b_flag resp=200 resp=none closed=1
raw b_tid "${PATHS[4]}" tid_mismatch_bound && out_is b_tid resp=200 resp=none closed=1
h_assert_log up-1 -eq 2 event=msrp_framing_error why=bad_byte_range dir=client
h_assert_log up-1 -eq 1 event=msrp_framing_error why=bad_end_line_flag dir=client
h_assert_log up-1 -eq 1 event=msrp_framing_error why=end_line_tid_mismatch dir=client
t_wait_metric cp 'imsplit_cp_sessions_active' -eq $((SESSIONS - 4)) 10 ||
    t_fail "the four sessions with broken framing did not end"
h_assert_log cp -eq 4 event=leg_event dir=client kind=peer_closed

t_log "bound connections with bad requests: answered, connection kept"
raw b_bigrange "${PATHS[5]}" big_range_bound && out_is b_bigrange resp=200 resp=413 resp=200
raw b_other "${PATHS[6]}" other_session_bound &&
    out_is b_other resp=200 resp=481 resp=501 resp=200

t_log "a chunk that never ends: the leg goes idle"
raw b_never "${PATHS[7]}" never_ending_chunk 0 8 && out_is b_never resp=200 closed=1
h_assert_log up-1 -eq 1 event=leg_idle
h_assert_log cp -eq 1 event=leg_event dir=client kind=idle

t_log "the silent and the slow connection: closed at the bind deadline"
wait "$SILENT_PID" || t_fail "silent case failed: $(cat "$T_DIR/silent.out")"
wait "$SLOW_PID" || t_fail "slow case failed: $(cat "$T_DIR/slow.out")"
for f in silent slow; do
    ms=$(sed -n 's/^closed=1 after_ms=//p' "$T_DIR/$f.out")
    [[ -n $ms ]] || t_fail "$f connection still open: $(cat "$T_DIR/$f.out")"
    ((ms >= 9000 && ms <= 13000)) || t_fail "$f connection closed after $ms ms, expected ~10000"
    t_log "ok: $f connection closed after $ms ms"
done
h_assert_log up-1 -eq 2 event=msrp_conn_closed why=bind_timeout

# Session 0 was never bound: it ends when its client binds and hangs up.
raw b_close "${PATHS[0]}" bind_close
t_wait_metric cp imsplit_cp_sessions_active -eq 0 15 || t_fail "sessions left"
t_sipp_wait uac 20
t_sipp_wait uas 20
t_expect_sipp_ok uac uas
t_finish
