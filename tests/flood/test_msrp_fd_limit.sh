#!/usr/bin/env bash
# A worker short of file descriptors under a storm of MSRP connections.
#
# 1. Its RLIMIT_NOFILE is lowered (prlimit) to what it uses + HEADROOM, then
#    N silent connections arrive. Silent connections may not take the last
#    64 descriptors: each one accepted that close to the limit closes the
#    oldest waiting one (imsplit_up_msrp_conns_dropped_total{why=
#    "fd_limit"}), so the metrics server still answers during the storm.
# 2. The limit is lowered below what it uses: accept() fails with
#    EMFILE and there is no silent connection left to close, so the worker
#    stops watching its listener for a back-off (100 ms doubling to 1.6 s,
#    logged rate-limited) instead of being woken again at once: its CPU
#    time over that window must stay small. Raised again, the waiting
#    connections are accepted (imsplit_up_msrp_accept_paused_total{why=
#    "fd_limit"} counts the pauses), and a real MSRP session relays.
# Nothing is left at the end.
T_WORKERS=1
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/msrp_lib.sh"
t_init msrp_fd_limit
m_init
command -v prlimit >/dev/null || { t_log "SKIP: prlimit not found"; exit 77; }

N=600
HEADROOM=150
RESERVE=64
SE=60
FLOOD=$IMSPLIT_SRC_DIR/tests/flood

t_start_stack --session-expires $SE --min-se 2
addr=$(t_ctl_worker up-1 msrp)
port=${addr##*:}
up_pid=${T_PID_OF[up-1]}
nofile=$(prlimit --pid "$up_pid" --nofile --noheadings --output SOFT,HARD)
read -r soft hard <<<"$nofile"
open_fds() { find "/proc/$up_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$up_pid/stat"; }
storm_opened() { # NAME: waits for the storm client's first line
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q '^opened=' "$T_DIR/$1.log" 2>/dev/null && break
        t_alive "${T_PID_OF[$1]}" || break
        t_check_daemons
        sleep 0.05
    done
    grep -m1 '^opened=' "$T_DIR/$1.log" || t_fail "storm $1 did not report: $(cat "$T_DIR/$1.log")"
}

# ---- 1: close to the limit ------------------------------------------------
used=$(open_fds)
limit=$((used + HEADROOM))
prlimit --pid "$up_pid" --nofile="$limit:$hard" || t_fail "prlimit failed"
t_log "worker uses $used descriptors; RLIMIT_NOFILE $soft -> $limit"
t_spawn storm1 python3 "$FLOOD/conn_storm.py" 127.0.0.1 "$port" $N "$T_DIR/release1" 30
t_log "storm 1: $(storm_opened storm1)"
t_wait_metric up-1 'imsplit_up_msrp_conns_dropped_total{why="fd_limit"}' -gt 0 5 ||
    t_fail "no connection was dropped for the descriptor limit"
waiting=$(t_metric up-1 imsplit_up_msrp_conns_unbound)
dropped=$(t_metric up-1 'imsplit_up_msrp_conns_dropped_total{why="fd_limit"}')
((waiting + dropped == N)) || t_fail "$waiting waiting + $dropped dropped for $N connections"
((waiting <= HEADROOM - RESERVE + 1)) || t_fail "$waiting silent connections, more than the $((HEADROOM - RESERVE)) descriptors outside the reserve"
(($(open_fds) <= limit - RESERVE + 1)) || t_fail "the worker holds $(open_fds) descriptors, into its reserve (limit $limit)"
t_log "ok: $waiting silent connections held, $dropped dropped for the descriptor limit; metrics answer"
t_assert_metric up-1 'imsplit_up_msrp_accept_paused_total{why="fd_limit"}' -eq 0
t_assert_log up-1 -ge 1 event=msrp_conn_dropped why=fd_limit
touch "$T_DIR/release1"
t_wait_exit storm1 20 || t_fail "storm 1 did not finish"
t_wait_metric up-1 imsplit_up_msrp_conns_unbound -eq 0 10 || t_fail "silent connections left after storm 1"

# ---- 2: at the limit -----------------------------------------------------
# Below what it holds (the metrics server's connections come and go).
used=$(open_fds)
prlimit --pid "$up_pid" --nofile="$((used - 4)):$hard" || t_fail "prlimit failed"
t_log "RLIMIT_NOFILE -> $((used - 4)), below the $used descriptors in use"
ticks0=$(cpu_ticks) t0=$(t_now)
t_spawn storm2 python3 "$FLOOD/conn_storm.py" 127.0.0.1 "$port" 100 "$T_DIR/release2" 30
t_log "storm 2: $(storm_opened storm2)"
sleep 3
ticks1=$(cpu_ticks) t1=$(t_now)
t_check_daemons
hz=$(getconf CLK_TCK)
cpu_pct=$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$hz" -v s="$t0" -v e="$t1" \
    'BEGIN { printf "%.1f", (b - a) / hz / (e - s) * 100 }')
t_log "worker CPU while accept() failed: ${cpu_pct}% of one core over $(t_diff_ms "$t0" "$t1") ms"
awk -v p="$cpu_pct" 'BEGIN { exit !(p < 20) }' || t_fail "the worker spent ${cpu_pct}% CPU while it could not accept"
t_assert_log up-1 -ge 1 event=msrp_accept_paused why=fd_limit
paused_lines=$(t_count_log up-1 event=msrp_accept_paused why=fd_limit)
((paused_lines <= 5)) || t_fail "$paused_lines msrp_accept_paused lines in about 3 s"
prlimit --pid "$up_pid" --nofile="$soft:$hard" || t_fail "prlimit failed"
# The connections waiting in the backlog are taken once the pause ends.
t_wait_metric up-1 imsplit_up_msrp_conns_unbound -eq 100 5 ||
    t_fail "the waiting connections were not accepted after the limit was raised"
paused=$(t_metric up-1 'imsplit_up_msrp_accept_paused_total{why="fd_limit"}')
((paused >= 2)) || t_fail "imsplit_up_msrp_accept_paused_total{why=\"fd_limit\"} = $paused, expected the back-off to repeat"
t_log "ok: accepting paused $paused times in $paused_lines log lines, resumed once descriptors were free"
touch "$T_DIR/release2"
t_wait_exit storm2 20 || t_fail "storm 2 did not finish"
t_wait_metric up-1 imsplit_up_msrp_conns_unbound -eq 0 10 || t_fail "silent connections left after storm 2"

# ---- a session afterwards ------------------------------------------------
m_small_session $SE 1500
t_log "ok: a session after the storms relayed both ways"

t_finish
