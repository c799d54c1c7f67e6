#!/usr/bin/env bash
# MSRP connection storm on a worker: N TCP connections opened at once to
# its MSRP port, none of which ever sends a byte.
#
# The worker keeps at most --max-unbound (default 1024) connections that
# have not sent their first SEND; each one accepted beyond that closes the
# oldest waiting one: imsplit_up_msrp_conns_dropped_total{why=
# "unbound_limit"} must count exactly N - 1024, the gauge
# imsplit_up_msrp_conns_unbound must stay at the limit, and the drops are
# logged at most once a second. While the storm's connections are held, a
# real MSRP session set up through the CP must relay both ways (its client
# connection gets in: it pushes out the oldest silent one, then binds at
# once). When the storm lets go, the worker's connection and socket gauges
# must come back to their idle values, and nothing is left.
T_WORKERS=1
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/msrp_lib.sh"
t_init msrp_conn_storm
m_init

N=3000
LIMIT=1024
SE=60
HOLD_MS=3000
FLOOD=$IMSPLIT_SRC_DIR/tests/flood
# The storm client and the worker (which inherits it) need descriptors
# beyond a usual soft limit of 1024.
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < N + 1000)); then
    t_log "SKIP: the descriptor limit ($hard) does not allow $N connections"
    exit 77
fi
soft=$(ulimit -Sn)
[[ $soft == unlimited ]] || ((soft >= N + 1000)) || ulimit -Sn $((N + 1000))

t_start_stack --session-expires $SE --min-se 2
addr=$(t_ctl_worker up-1 msrp)
port=${addr##*:}
up_pid=${T_PID_OF[up-1]}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$up_pid/status" 2>/dev/null || echo 0; }
# Socket descriptors only (libuv opens a spare /dev/null with the first
# TCP handle and keeps it).
fds() { find "/proc/$up_pid/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' 2>/dev/null | wc -l; }
rss_before=$(rss_kb) fds_before=$(fds)
t_assert_metric up-1 imsplit_up_msrp_conns_unbound -eq 0

t_spawn storm python3 "$FLOOD/conn_storm.py" 127.0.0.1 "$port" $N "$T_DIR/release" 50
for ((i = 0; i < 600; i++)); do
    grep -q '^opened=' "$T_DIR/storm.log" 2>/dev/null && break
    t_alive "${T_PID_OF[storm]}" || break
    t_check_daemons
    sleep 0.05
done
line=$(grep -m1 '^opened=' "$T_DIR/storm.log") || t_fail "the storm did not report: $(cat "$T_DIR/storm.log")"
t_log "storm: $line"
opened=$(sed -n 's/^opened=\([0-9]*\).*/\1/p' <<<"$line")
((opened == N)) || t_fail "only $opened of $N connections were made"
# Every connection was accepted; all but the newest LIMIT were dropped.
t_wait_metric up-1 'imsplit_up_msrp_conns_dropped_total{why="unbound_limit"}' -eq $((N - LIMIT)) 10 ||
    t_fail "the worker did not drop $((N - LIMIT)) connections"
t_assert_metric up-1 imsplit_up_msrp_conns_unbound -eq $LIMIT
t_assert_metric up-1 'imsplit_up_msrp_conns_dropped_total{why="fd_limit"}' -eq 0
rss_storm=$(rss_kb) fds_storm=$(fds)
curl -sf --max-time 2 "http://127.0.0.1:${T_UP_METRICS_PORTS[0]}/healthz" >/dev/null ||
    t_fail "the worker's /healthz does not answer during the storm"
t_log "ok: worker up, $LIMIT connections waiting, $((N - LIMIT)) dropped; sockets $fds_before -> $fds_storm"

# A real session while the storm's connections are held.
m_small_session $SE $HOLD_MS
t_log "ok: a session set up during the storm relayed both ways"
# Its client connection pushed out one more silent one (unless silent ones
# had already reached their bind deadline, UP_MSRP_BIND_MS = 10 s, on a
# slow machine).
dropped=$(t_metric up-1 'imsplit_up_msrp_conns_dropped_total{why="unbound_limit"}')
((dropped == N - LIMIT + 1)) ||
    ( ((dropped == N - LIMIT)) && (($(t_count_log up-1 event=msrp_conn_closed why=bind_timeout) > 0)) ) ||
    t_fail "$dropped connections dropped after the session, expected $((N - LIMIT + 1))"

# The storm lets go: what it still holds is closed by the worker on EOF.
touch "$T_DIR/release"
t_wait_exit storm 20 || t_fail "the storm client did not finish"
t_log "storm: $(grep -m1 '^closed_by_peer=' "$T_DIR/storm.log")"
closed=$(sed -n 's/^closed_by_peer=\([0-9]*\).*/\1/p' "$T_DIR/storm.log")
timed_out=$(t_count_log up-1 event=msrp_conn_closed why=bind_timeout)
((closed >= dropped && closed <= dropped + timed_out)) ||
    t_fail "the storm saw $closed of its connections closed by the worker, which dropped $dropped (and timed out $timed_out)"
t_wait_metric up-1 imsplit_up_msrp_conns_unbound -eq 0 10 || t_fail "unbound connections left after the storm"
t_assert_metric up-1 imsplit_up_sockets_open -eq 0
for ((i = 0; i < 100; i++)); do (($(fds) <= fds_before)) && break; sleep 0.05; done
fds_after=$(fds) rss_after=$(rss_kb)
((fds_after <= fds_before)) || t_fail "the worker holds $fds_after sockets, $fds_before before the storm"
lines=$(t_count_log up-1 event=msrp_conn_dropped why=unbound_limit)
((lines >= 1 && lines <= 10)) || t_fail "$lines msrp_conn_dropped lines for $((N - LIMIT + 1)) drops"
t_log "worker: sockets $fds_before / $fds_storm / $fds_after, VmRSS $rss_before / $rss_storm / $rss_after kB (before / storm / after); $lines drop lines"

t_finish
