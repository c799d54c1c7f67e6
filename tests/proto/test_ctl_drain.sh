#!/usr/bin/env bash
# imsplit-ctl drain: the CP stops placing sessions on the drained worker,
# lists it as draining, sends it Drain; the worker finishes the session it
# holds, then leaves by itself (Deregister, exit 0) and the CP forgets it.
# New sessions meanwhile go to the other worker. Draining an unknown worker
# is refused (exit 2).
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../lib/ctl_lib.sh"
t_init ctl_drain

SE=30
t_start_stack --session-expires $SE --min-se 2
t_sipp_uas uas ctrl_answer.xml -m 2
# Two calls 3 s apart, each held 5 s: the first is up when the drain comes,
# the second is placed after it.
t_sipp_uac uac client_bye.xml -key se $SE -d 5000 -m 2 -r 1 -rp 3000

t_wait_metric cp imsplit_cp_sessions_active -eq 1 5 || t_fail "first session never up"
json=$(t_ctl --json sessions) || t_fail "imsplit-ctl sessions failed"
W=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["query_result"]["sessions"][0]["worker_id"])' "$json")
case $W in up-1) O=up-2 ;; up-2) O=up-1 ;; *) t_fail "session on unknown worker '$W'" ;; esac
t_log "first session on $W: draining it, $O stays"

out=$(t_ctl drain "$W") || t_fail "imsplit-ctl drain $W exited $?"
[[ $out == *draining* ]] || t_fail "imsplit-ctl drain $W said '$out'"
# The worker will leave on its own: not a crash.
T_GONE[$W]=1
json=$(t_ctl --json drain "$W") || t_fail "a second drain of $W exited $?"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["body"] == "drain_result" and d["drain_result"]["status"] == "STATUS_OK", d' "$json" ||
    t_fail "drain --json: $json"

rc=0
t_ctl drain nosuch 2>"$T_DIR/drain_nosuch.err" || rc=$?
[[ $rc == 2 ]] || t_fail "imsplit-ctl drain nosuch exited $rc, expected 2"
grep -q "no such worker" "$T_DIR/drain_nosuch.err" || t_fail "drain nosuch: '$(cat "$T_DIR/drain_nosuch.err")'"
t_log "ok: drain of an unknown worker refused (exit 2)"

[[ $(t_ctl_worker "$W" state) == draining ]] ||
    t_fail "imsplit-ctl workers shows $W as '$(t_ctl_worker "$W" state)', expected draining"
json=$(t_ctl --json workers) || t_fail "imsplit-ctl --json workers failed"
python3 -c '
import json, sys
w = {x["node_id"]: x["state"] for x in json.loads(sys.argv[1])["query_result"]["workers"]}
assert w[sys.argv[2]] == "WORKER_DRAINING" and w[sys.argv[3]] == "WORKER_LIVE", w
' "$json" "$W" "$O" || t_fail "workers --json: $json"
t_log "ok: $W draining, $O live"

# The second session goes to the other worker.
t_wait_metric "$O" imsplit_up_legs_allocated_total -eq 2 10 ||
    t_fail "the second session was not placed on $O"
t_assert_metric "$W" imsplit_up_legs_allocated_total -eq 2

# The first session ends; the drained worker leaves by itself.
t_wait_exit "$W" 20 || t_fail "$W did not leave after its last leg"
[[ ${T_RC_OF[$W]} == 0 ]] || t_fail "$W exited ${T_RC_OF[$W]}, expected 0"
t_log "ok: $W exited 0 by itself"
t_assert_log "$W" -eq 1 event=drained
t_assert_log cp -eq 1 event=worker_left "worker=$W"
for ((i = 0; i < 40; i++)); do
    [[ $(t_ctl_worker "$W" state) == missing ]] && break
    sleep 0.05
done
[[ $(t_ctl_worker "$W" state) == missing ]] || t_fail "the CP still lists $W"
t_log "ok: the CP no longer lists $W"

t_expect_sipp_ok uac uas
t_assert_metric "$O" imsplit_up_legs_allocated_total -eq 2
t_assert_metric "$O" 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_finish
