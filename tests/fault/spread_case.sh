# Body of test_workers_spread.sh / test_workers_spread_2.sh (sourced after
# lib.sh with T_WORKERS set): N concurrent sessions spread over the workers.
#
# sipp sets up N sessions in about one second and holds each for HOLD_MS
# after its ACK, so all N are up at once. Then the CP's placement must have
# spread them evenly (least loaded live worker): every worker has N/K +- 2
# sessions, by four independent counts that must agree:
#   - imsplit-ctl workers (the CP's per-worker session count, and the legs
#     the worker last reported in its heartbeat: 2 per session),
#   - imsplit_up_legs_active on each worker's own metrics,
#   - the worker address in the MSRP path each client got in its 200,
#   - the worker address in the path each controlling INVITE carried.
# Then every client hangs up; each worker must have released exactly the
# legs it allocated, per direction, and nothing may be left.

N=${IMSPLIT_SPREAD_SESSIONS:-40}
TOL=2
HOLD_MS=4000
SE=600
T_SIPP_TRACE_MSG=0

t_start_stack --session-expires $SE --min-se 2
uac_xml=$(t_scenario "$IMSPLIT_SRC_DIR/tests/fault/client_hold.xml" HOLD_MS=$HOLD_MS)
t_sipp_uas uas "$IMSPLIT_SRC_DIR/tests/fault/ctrl_hold.xml" -key se $SE -m "$N"
t_sipp_uac uac "$uac_xml" -key se $SE -m "$N" -l "$N" -r "$N" -rp 1000

t_wait_metric cp imsplit_cp_sessions_active -eq "$N" 10 ||
    t_fail "$N sessions never were active at once"
for ((i = 0; i < 100; i++)); do
    (($(t_event_count uac answered) == N)) && break
    sleep 0.05
done
(($(t_event_count uac answered) == N)) || t_fail "only $(t_event_count uac answered) of $N clients got a 200"
t_log "ok: $N sessions up at once"

want=$((N / T_WORKERS))
# Heartbeats carry the workers' leg counts: one more round after the last
# allocation and imsplit-ctl shows them.
for ((i = 0; i < 40; i++)); do
    legs_total=$(t_ctl_workers | awk '{ s += $4 } END { print s + 0 }')
    ((legs_total == 2 * N)) && break
    sleep 0.05
done
t_ctl workers
t_ctl_workers >"$T_DIR/workers.txt" || t_fail "imsplit-ctl workers failed"
awk -v k="$T_WORKERS" '$2 == "live" { n++ } END { exit !(n == k) }' "$T_DIR/workers.txt" ||
    t_fail "imsplit-ctl workers does not list $T_WORKERS live workers"

# The paths each side saw, counted per worker address.
per_addr() { # EVENTS-FILE EVENT
    python3 - "$1" "$2" <<'PY'
import collections, re, sys
c = collections.Counter()
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if line.startswith("ev=%s " % sys.argv[2]):
        m = re.search(r" path=msrp://([^/]+)/", line)
        c[m.group(1) if m else "none"] += 1
for a, n in c.items():
    print(a, n)
PY
}
per_addr "$T_DIR/uac.events" answered >"$T_DIR/uac_paths.txt"
per_addr "$T_DIR/uas.events" invite >"$T_DIR/uas_paths.txt"

total=0
for name in "${T_UP_NAMES[@]}"; do
    read -r _ _ sessions legs msrp _ < <(awk -v id="$name" '$1 == id' "$T_DIR/workers.txt")
    up_legs=$(t_metric "$name" imsplit_up_legs_active)
    by_client=$(awk -v a="$msrp" '$1 == a { print $2 }' "$T_DIR/uac_paths.txt")
    by_ctrl=$(awk -v a="$msrp" '$1 == a { print $2 }' "$T_DIR/uas_paths.txt")
    t_log "$name ($msrp): ctl sessions=$sessions legs=$legs, metrics legs_active=$up_legs," \
        "client paths=${by_client:-0}, controlling paths=${by_ctrl:-0}"
    t_assert_near "$name sessions (imsplit-ctl)" "$sessions" "$want" $TOL
    [[ $legs == $((2 * sessions)) ]] ||
        t_fail "$name: imsplit-ctl legs $legs, expected 2 x $sessions sessions"
    [[ $up_legs == $((2 * sessions)) ]] ||
        t_fail "$name: imsplit_up_legs_active $up_legs, expected 2 x $sessions sessions"
    [[ ${by_client:-0} == "$sessions" && ${by_ctrl:-0} == "$sessions" ]] ||
        t_fail "$name: $sessions sessions at the CP, but ${by_client:-0} client and ${by_ctrl:-0} controlling paths point at $msrp"
    total=$((total + sessions))
    eval "SESSIONS_ON_${name//-/_}=$sessions"
done
((total == N)) || t_fail "the workers hold $total sessions, expected $N"
t_log "ok: $N sessions over $T_WORKERS workers, each $want +- $TOL"

# The clients hang up; the CP relays each BYE and releases both directions.
t_expect_sipp_ok uac uas
(($(t_event_count uac hangup_done) == N)) || t_fail "only $(t_event_count uac hangup_done) of $N client BYEs answered"
(($(t_event_count uas bye) == N)) || t_fail "only $(t_event_count uas bye) of $N BYEs reached the controlling side"
t_wait_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq "$N" 10 || true
for name in "${T_UP_NAMES[@]}"; do
    var=SESSIONS_ON_${name//-/_}
    n=${!var}
    t_assert_metric "$name" imsplit_up_legs_allocated_total -eq $((2 * n))
    t_assert_metric "$name" 'imsplit_up_legs_released_total{direction="client"}' -eq "$n"
    t_assert_metric "$name" 'imsplit_up_legs_released_total{direction="controlling"}' -eq "$n"
done
t_assert_metric cp imsplit_cp_sessions_total -eq "$N"
t_assert_metric cp imsplit_cp_sessions_worker_lost_total -eq 0
t_assert_log cp -eq "$N" event=release_sent direction=client reason=peer_bye
t_assert_log cp -eq "$N" event=release_sent direction=controlling reason=bye_2xx

t_finish
