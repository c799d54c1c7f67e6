#!/usr/bin/env bash
# A worker freezes (SIGSTOP) for longer than the liveness window, then
# resumes (SIGCONT) still holding the legs of sessions the CP has ended.
#
# CP with --heartbeat-ms 200 --liveness 3, two workers, N sessions (N/2 on
# each). up-2 is stopped for 3 x 200 ms + 500 ms. Meanwhile the CP must
# declare it lost and end its sessions: BYE on both legs, seen by sipp on
# both sides, sessions closed, the others untouched. When up-2 resumes it
# still has those legs; it registers again (same epoch) and the CP's leg
# audit after the registration must find them on the worker only and
# release them: within a few seconds imsplit_up_legs_active on up-2 is 0,
# its log shows the legs released with reason=audit, and
# imsplit_cp_audit_mismatches_total{kind="worker_only"} counts them. Then
# the sessions of up-1 end normally. Nothing may be left.
#
# The CP runs with --audit-ms 0 (audits only after a registration), so the
# release can only come from the audit that follows the re-registration.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init worker_stop

N=6
HB_MS=200
LIVENESS=3
STOP_MS=$((HB_MS * LIVENESS + 500))
SE=600
HOLD_MS=8000
FAULT=$IMSPLIT_SRC_DIR/tests/fault

audit_flags=()
if "$T_CP_BIN" --help 2>/dev/null | grep -q -- '--audit-ms'; then
    audit_flags=(--audit-ms 0)
else
    t_log "note: this imsplit-cp has no --audit-ms; the legs of the stopped" \
        "worker can only go if the CP audits it some other way"
fi

t_start_stack --session-expires $SE --min-se 2 \
    --heartbeat-ms $HB_MS --liveness $LIVENESS "${audit_flags[@]}"
uac_xml=$(t_scenario "$FAULT/client_hold.xml" HOLD_MS=$HOLD_MS)
t_sipp_uas uas "$FAULT/ctrl_hold.xml" -key se $SE -m $N
t_sipp_uac uac "$uac_xml" -key se $SE -m $N -l $N -r 20 -rp 1000

t_wait_metric cp imsplit_cp_sessions_active -eq $N 10 || t_fail "$N sessions never were up"
t_wait_metric up imsplit_up_legs_active -eq $((2 * N)) 5 || t_fail "the workers do not hold $((2 * N)) legs"
on_victim=$(t_ctl_worker up-2 sessions)
on_keep=$(t_ctl_worker up-1 sessions)
((on_victim > 0 && on_keep > 0 && on_victim + on_keep == N)) ||
    t_fail "sessions not on both workers: up-1 $on_keep, up-2 $on_victim"
t_assert_metric up-2 imsplit_up_legs_active -eq $((2 * on_victim))
t_log "sessions: $on_keep on up-1, $on_victim on up-2"

t_kill up-2 STOP
stop_ts=${T_KILL_TS[up-2]}
sleep "$(awk -v ms=$STOP_MS 'BEGIN { printf "%.3f", ms / 1000 }')"

# While up-2 is frozen (its metrics do not answer; not asked): the CP has
# ended its sessions, and only those.
t_assert_log cp -eq 1 event=worker_lost worker=up-2 why=missed_heartbeats \
    "sessions_ended=$on_victim"
lost_ts=$(t_log_times cp event=worker_lost worker=up-2 | head -n 1)
t_wait_metric cp imsplit_cp_sessions_active -eq "$on_keep" 2 ||
    t_fail "the sessions of the stopped worker are still open at the CP"
(($(t_event_count uac bye) == on_victim)) ||
    t_fail "$(t_event_count uac bye) clients got a BYE while up-2 was stopped, expected $on_victim"
(($(t_event_count uas bye) == on_victim)) ||
    t_fail "$(t_event_count uas bye) controlling sides got a BYE while up-2 was stopped, expected $on_victim"
last_bye=$( (grep '^ev=bye ' "$T_DIR/uac.events"; grep '^ev=bye ' "$T_DIR/uas.events") |
    awk '{ print $NF }' | sort -n | tail -n 1)
t_log "ok: up-2 declared lost $(t_diff_ms "$stop_ts" "$lost_ts") ms after SIGSTOP, last BYE" \
    "$(t_diff_ms "$stop_ts" "$last_bye") ms after it"
t_assert_metric cp imsplit_cp_sessions_worker_lost_total -eq "$on_victim"
[[ $(t_ctl_worker up-2 state) == dead ]] || t_fail "imsplit-ctl shows up-2 $(t_ctl_worker up-2 state), expected dead"
[[ $(t_ctl_sessions_on up-1) == "$on_keep" ]] || t_fail "the sessions of up-1 are not all listed"

t_kill up-2 CONT
cont_ts=${T_KILL_TS[up-2]}
# Back: registered again, and the legs it kept are released by the audit.
if ! t_wait_metric up-2 imsplit_up_legs_active -eq 0 5; then
    grep -E 'event=(worker_registered|audit|worker_lost)' "$T_DIR/cp.log" >&2 || true
    grep -E 'event=(registered|cp_lost|cp_silent|cp_error|leg_released)' "$T_DIR/up-2.log" >&2 || true
    ((${#audit_flags[@]})) ||
        t_fail "up-2 kept the legs of its ended sessions after SIGCONT; this CP has no --audit-ms (no leg audit after re-registration)"
    t_fail "up-2 kept the legs of its ended sessions after SIGCONT (no audit released them)"
fi
free_ts=$(t_log_times up-2 event=leg_released reason=audit | tail -n 1)
t_log "ok: up-2 holds no legs; last one released $(t_diff_ms "$cont_ts" "$free_ts") ms after SIGCONT"
t_assert_log up-2 -eq $((2 * on_victim)) event=leg_released reason=audit
t_assert_metric cp 'imsplit_cp_audit_mismatches_total{kind="worker_only"}' -eq $((2 * on_victim))
t_assert_metric cp 'imsplit_cp_audit_mismatches_total{kind="cp_only"}' -eq 0
t_assert_metric up-2 imsplit_up_sockets_open -eq 0
t_wait_metric cp 'imsplit_cp_workers{state="live"}' -eq 2 3 || t_fail "up-2 is not live again"
t_assert_log cp -ge 2 event=worker_registered worker=up-2
t_assert_metric cp imsplit_cp_sessions_worker_lost_total -eq "$on_victim"
t_assert_metric up-1 imsplit_up_legs_active -eq $((2 * on_keep))

# The sessions of up-1 end by the clients' BYEs.
t_expect_sipp_ok uac uas
(($(t_event_count uac hangup_done) == on_keep)) ||
    t_fail "$(t_event_count uac hangup_done) client hang-ups answered, expected $on_keep"
t_wait_metric up-1 'imsplit_up_legs_released_total{direction="controlling"}' -eq "$on_keep" 5 || true
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="client"}' -eq "$on_keep"
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="controlling"}' -eq "$on_keep"

t_finish
