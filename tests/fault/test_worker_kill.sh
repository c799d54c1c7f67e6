#!/usr/bin/env bash
# A worker dies (SIGKILL) with sessions on it.
#
# CP with --heartbeat-ms 200 --liveness 3, two workers, N sessions set up
# by sipp (N/2 on each). up-2 is killed. The CP must notice within the
# liveness window and end exactly the sessions that were on up-2: BYE on
# both legs (no session-timer Reason), which sipp sees on the client and
# on the controlling side within 3 heartbeat intervals (600 ms) + SLACK_MS
# of the kill, counted in imsplit_cp_sessions_worker_lost_total. No
# ReleaseLeg goes to the dead worker. The sessions on up-1 are untouched:
# no BYE, still listed by imsplit-ctl. up-2 is started again with the same
# id (a new epoch): it is live again with no legs, and nothing is counted
# twice. Then the clients of the surviving sessions hang up and those end
# normally, each direction released on up-1. Nothing may be left.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init worker_kill

N=10
HB_MS=200
LIVENESS=3
SLACK_MS=${IMSPLIT_WORKER_KILL_SLACK_MS:-$((100 * T_SLOW))}
LIMIT_MS=$((HB_MS * LIVENESS + SLACK_MS))
SE=600      # no session timer runs out during the test
# The surviving clients hang up this long after their ACK: everything up
# to the restart of up-2 below must be done by then. Under valgrind that
# takes about four times as long (each imsplit-ctl run about a second).
HOLD_MS=$((T_VALGRIND ? 35000 : 7000))
FAULT=$IMSPLIT_SRC_DIR/tests/fault

t_start_stack --session-expires $SE --min-se 2 \
    --heartbeat-ms $HB_MS --liveness $LIVENESS
uac_xml=$(t_scenario "$FAULT/client_hold.xml" HOLD_MS=$HOLD_MS)
t_sipp_uas uas "$FAULT/ctrl_hold.xml" -key se $SE -m $N
t_sipp_uac uac "$uac_xml" -key se $SE -m $N -l $N -r 20 -rp 1000

t_wait_metric cp imsplit_cp_sessions_active -eq $N 10 || t_fail "$N sessions never were up"
for ((i = 0; i < 100; i++)); do
    (($(t_event_count uac answered) == N)) && break
    sleep 0.05
done
(($(t_event_count uac answered) == N)) || t_fail "only $(t_event_count uac answered) clients got a 200"
t_ctl workers
victim_addr=$(t_ctl_worker up-2 msrp)
keep_addr=$(t_ctl_worker up-1 msrp)
on_victim=$(t_ctl_worker up-2 sessions)
on_keep=$(t_ctl_worker up-1 sessions)
((on_victim > 0 && on_keep > 0 && on_victim + on_keep == N)) ||
    t_fail "sessions not on both workers: up-1 $on_keep, up-2 $on_victim"
t_log "sessions: $on_keep on up-1 ($keep_addr), $on_victim on up-2 ($victim_addr)"

# Let a few heartbeats pass so the kill lands at a random phase.
sleep 0.3
t_kill up-2 KILL
kill_ts=${T_KILL_TS[up-2]}

# Every session of up-2 gets its two BYEs; give it 5 s before judging.
for ((i = 0; i < 100; i++)); do
    (($(t_event_count uac bye) >= on_victim && $(t_event_count uas bye) >= on_victim)) && break
    sleep 0.05
done
t_assert_log cp -eq 1 event=worker_lost worker=up-2 why=missed_heartbeats \
    "sessions_ended=$on_victim"
t_wait_metric cp imsplit_cp_sessions_active -eq "$on_keep" 5 ||
    t_fail "the sessions of up-2 did not close"

# Which calls were on which worker (the MSRP path in each side's SDP), and
# when their BYEs came, against the kill.
python3 - "$T_DIR/uac.events" "$T_DIR/uas.events" "$kill_ts" "$victim_addr" \
    "$keep_addr" "$on_victim" "$LIMIT_MS" <<'PY' | tee "$T_DIR/figures" || t_fail "BYEs after the kill: see above"
import re, sys
uac, uas, kill, victim, keep, n_victim, limit = sys.argv[1:]
kill, n_victim, limit = float(kill), int(n_victim), float(limit)

def calls(path):
    where, bye = {}, {}
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"ev=(answered|invite|bye) call=(\d+) .*\s(\d+\.\d+)\s*$", line)
        if not m:
            continue
        if m.group(1) == "bye":
            bye[m.group(2)] = float(m.group(3))
        else:
            p = re.search(r" path=msrp://([^/]+)/", line)
            where[m.group(2)] = p.group(1) if p else "?"
    return where, bye

bad = []
for side, path in (("client", uac), ("controlling", uas)):
    where, bye = calls(path)
    v = [c for c, a in where.items() if a == victim]
    k = [c for c, a in where.items() if a == keep]
    if len(v) != n_victim:
        bad.append("%s: %d calls on the killed worker, expected %d" % (side, len(v), n_victim))
    missing = [c for c in v if c not in bye]
    if missing:
        bad.append("%s: no BYE for calls %s of the killed worker" % (side, missing))
    early = [c for c in k if c in bye]
    if early:
        bad.append("%s: calls %s on the surviving worker got a BYE" % (side, early))
    lat = sorted((bye[c] - kill) * 1000 for c in v if c in bye)
    if lat:
        print("%-12s BYEs of the killed worker's %d sessions: %.1f .. %.1f ms after the kill"
              % (side, len(lat), lat[0], lat[-1]))
        if lat[-1] > limit:
            bad.append("%s: last BYE %.1f ms after the kill, limit %.0f ms" % (side, lat[-1], limit))
        if lat[0] < 0:
            bad.append("%s: a BYE came before the kill" % side)
for b in bad:
    print("FAIL: " + b)
sys.exit(1 if bad else 0)
PY
lost_ts=$(t_log_times cp event=worker_lost worker=up-2 | head -n 1)
t_log "CP declared up-2 lost $(t_diff_ms "$kill_ts" "$lost_ts") ms after the kill" \
    "(CP log, ms resolution; limit $LIMIT_MS ms for the BYEs)"

# What the CP did about it: counted, BYEs with the worker_lost cause and no
# Reason, no release sent to a dead worker, survivors untouched.
t_assert_metric cp imsplit_cp_sessions_worker_lost_total -eq "$on_victim"
t_assert_metric cp 'imsplit_cp_workers{state="dead"}' -eq 1
t_assert_metric cp 'imsplit_cp_workers{state="live"}' -eq 1
t_assert_log cp -eq "$on_victim" event=bye_sent leg=client cause=worker_lost
t_assert_log cp -eq "$on_victim" event=bye_sent leg=controlling cause=worker_lost
t_assert_log cp -eq 0 event=release_sent worker=up-2
[[ $(t_ctl_worker up-2 state) == dead ]] || t_fail "imsplit-ctl shows up-2 $(t_ctl_worker up-2 state), expected dead"
if grep '^ev=bye ' "$T_DIR/uac.events" | grep -qv ' reason= t='; then
    t_fail "a worker-lost BYE to the client carries a Reason"
fi
rows=$(t_ctl_session_rows)
on_up1=$(t_ctl_sessions_on up-1)
[[ $rows == "$on_keep" && $on_up1 == "$on_keep" ]] ||
    t_fail "imsplit-ctl sessions lists $rows sessions ($on_up1 on up-1), expected the $on_keep of up-1"
t_log "ok: the $on_keep sessions of up-1 are still up"
t_assert_metric up-1 imsplit_up_legs_active -eq $((2 * on_keep))

# up-2 again, same id, new epoch: live, empty, nothing counted twice.
t_start_worker 2
t_assert_log cp -eq 1 event=worker_registered worker=up-2 restarted=1
t_assert_metric cp imsplit_cp_sessions_worker_lost_total -eq "$on_victim"
t_assert_metric up-2 imsplit_up_legs_active -eq 0
[[ $(t_ctl_worker up-2 state) == live ]] || t_fail "imsplit-ctl shows up-2 $(t_ctl_worker up-2 state) after the restart"

# The surviving sessions end by the clients' BYEs, released on up-1.
t_expect_sipp_ok uac uas
(($(t_event_count uac hangup_done) == on_keep)) ||
    t_fail "$(t_event_count uac hangup_done) client hang-ups answered, expected $on_keep"
(($(t_event_count uas bye) == N)) || t_fail "$(t_event_count uas bye) BYEs on the controlling side, expected $N"
t_wait_metric up-1 'imsplit_up_legs_released_total{direction="controlling"}' -eq "$on_keep" 5 || true
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="client"}' -eq "$on_keep"
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="controlling"}' -eq "$on_keep"
t_assert_log cp -eq "$on_keep" event=release_sent direction=client reason=peer_bye worker=up-1
t_assert_log cp -eq "$on_keep" event=release_sent direction=controlling reason=bye_2xx worker=up-1
t_assert_metric cp imsplit_cp_sessions_worker_lost_total -eq "$on_victim"

t_finish
