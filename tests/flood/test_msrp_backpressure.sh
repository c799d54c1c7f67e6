#!/usr/bin/env bash
# An MSRP receiver that stops reading.
#
# The controlling peer streams one SIZE message (64 KiB chunks, paced at
# RATE bytes/s) to the client peer through the worker. Once data flows the
# client peer is stopped (SIGSTOP): it reads nothing. The kernel's socket
# buffers fill, then the worker's buffer towards that leg reaches
# --leg-buffer and the worker stops reading the sender: the relayed byte
# counter stops moving, bytes pile up unread in the kernel on the
# sender's connection, and the worker's leg buffers and memory stay
# bounded. After SIGCONT the whole message arrives intact, and the session
# ends normally with nothing left.
T_WORKERS=1
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/msrp_lib.sh"
t_init msrp_backpressure
m_init

SIZE=$((60 * 1048576))
RATE=20000000
LEG_BUFFER=65536
SLACK=131072 # UP_MSRP_BUFFER_SLACK: answers to one read may land past it
SE=60
HOLD_MS=20000 # the client hangs up then; the transfer is over well before
PEER_MS=40000

T_UP_ARGS=(--leg-buffer $LEG_BUFFER)
t_start_stack --session-expires $SE --min-se 2
up_pid=${T_PID_OF[up-1]}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$up_pid/status" 2>/dev/null || echo 0; }
relayed() { t_metric up-1 imsplit_up_msrp_bytes_relayed_total; }
m_paths
m_xpeer xpeer --send 1 --size $SIZE --chunk 65536 --rate $RATE \
    --expect 1 --expect-size 100 --send-after-recv --wait-close --timeout-ms $PEER_MS
m_session client_msrp_bye.xml ctrl_msrp.xml $SE -d $HOLD_MS
rss_before=$(rss_kb)
m_cpeer cpeer --send 1 --size 100 --expect 1 --expect-size $SIZE \
    --wait-close --timeout-ms $PEER_MS

# Data flows, then the receiver stops.
t_wait_metric up-1 imsplit_up_msrp_bytes_relayed_total -gt 2000000 10 || t_fail "no data relayed"
t_kill cpeer STOP
stop_ts=${T_KILL_TS[cpeer]}
# Wait until the worker stops relaying (the counter holds for 1 s).
last=$(relayed) still=0
for ((i = 0; i < 40 && still < 4; i++)); do
    sleep 0.25
    now=$(relayed)
    if [[ $now == "$last" ]]; then still=$((still + 1)); else still=0; fi
    last=$now
    t_check_daemons
done
((still >= 4)) || t_fail "the worker kept relaying for 10 s to a receiver that reads nothing"
t_log "relaying stopped $(t_diff_ms "$stop_ts" "$(t_now)") ms after SIGSTOP, at $last of $SIZE body bytes"
((last < SIZE)) || t_fail "the whole message went through before the receiver stopped: no back-pressure seen"
buf=$(t_metric up-1 imsplit_up_buffer_bytes)
((buf <= 2 * (LEG_BUFFER + SLACK))) || t_fail "the worker holds $buf bytes in leg buffers, more than 2 x (--leg-buffer + slack)"
unread=$(ss -Htn state established "( dport = :$M_XPORT )" | awk '{ n += $1 } END { print n + 0 }')
((unread > 0)) || t_fail "nothing waits unread on the worker's connection from the sender: it was not held back"
sleep 1
[[ $(relayed) == "$last" ]] || t_fail "the worker relayed again while the receiver was stopped"
rss_stop=$(rss_kb)
((rss_stop - rss_before < 16384)) || t_fail "the worker grew by $((rss_stop - rss_before)) kB while the receiver was stopped"
t_log "ok: held back: leg buffers $buf bytes, $unread bytes unread from the sender, worker VmRSS $rss_before -> $rss_stop kB"

t_kill cpeer CONT
m_peer_wait cpeer $((PEER_MS / 1000 + 5))
m_peer_wait xpeer 10
t_expect_sipp_ok uac uas
m_expect cpeer received -eq 1
m_expect cpeer payload_in -eq $SIZE
m_expect cpeer bad -eq 0
m_expect cpeer proto_err -eq 0
m_expect xpeer sent -eq 1
m_expect xpeer received -eq 1
m_expect xpeer resp_err -eq 0
for p in cpeer xpeer; do [[ ${T_RC_OF[$p]} == 0 ]] || t_fail "peer $p exited ${T_RC_OF[$p]}"; done
t_log "ok: after SIGCONT all $SIZE bytes arrived intact; worker VmRSS $(rss_kb) kB"

t_finish
