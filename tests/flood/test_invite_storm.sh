#!/usr/bin/env bash
# INVITE storm past the CP's limit of set-ups in progress (--max-pending).
#
# The controlling side answers every INVITE with 180 at once and 200 only
# after ANSWER_MS, so each accepted session stays a set-up in progress that
# long. One sipp client sends N INVITEs at RATE/s; each call takes either a
# 503 (it must carry Retry-After, else the call fails) or a 200 (then it
# hangs up at once). The CP must:
# - never hold more than MAXP set-ups (imsplit_cp_sessions_pending, sampled
#   through the storm) and refuse the rest with 503 + Retry-After: 5;
# - count every refusal in imsplit_cp_invites_rejected_total{why=
#   "max_pending"} and as a 503 sent, and log them rate-limited (at most a
#   line a second, each with the number it did not log);
# - stay up, and once the pending set-ups are answered take new INVITEs
#   again: a call after the storm is answered;
# - hold nothing afterwards (t_finish).
# The CP's memory (VmRSS) before, at its peak during the storm and after
# is printed.
T_WORKERS=1
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init invite_storm

N=1000
RATE=500
MAXP=20
ANSWER_MS=1500
SE=600
FLOOD=$IMSPLIT_SRC_DIR/tests/flood

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$T_CP_PID/status" 2>/dev/null || echo 0; }

t_start_stack --session-expires $SE --min-se 2 --max-pending $MAXP
rss_before=$(rss_kb)
uas_xml=$(t_scenario "$FLOOD/ctrl_slow.xml" ANSWER_MS=$ANSWER_MS)
t_sipp_uas uas "$uas_xml" -m 100000
start=$(t_now)
t_sipp_uac storm "$FLOOD/client_storm.xml" -key se $SE -m $N -r $RATE -rp 1000 -l $N

# Through the storm: the pending gauge never above MAXP.
max_pending=0 samples=0 rss_peak=$rss_before
while t_alive "${T_PID_OF[storm]}"; do
    v=$(t_metric cp imsplit_cp_sessions_pending)
    [[ $v != missing ]] || t_fail "CP metrics do not answer during the storm"
    ((v > max_pending)) && max_pending=$v
    samples=$((samples + 1))
    r=$(rss_kb)
    ((r > rss_peak)) && rss_peak=$r
    t_check_daemons
    sleep 0.1
    (($(awk -v a="$start" -v b="$(t_now)" 'BEGIN { print int(b - a) }') < 60)) ||
        t_fail "the storm did not end within 60 s"
done
t_expect_sipp_ok storm
elapsed=$(awk -v a="$start" -v b="$(t_now)" 'BEGIN { printf "%.1f", b - a }')
t_log "storm: $N INVITEs at $RATE/s over ${elapsed}s; pending peaked at $max_pending ($samples samples)"
((max_pending <= MAXP)) || t_fail "imsplit_cp_sessions_pending reached $max_pending, above --max-pending $MAXP"
((max_pending >= MAXP / 2)) || t_fail "pending peaked at $max_pending only: the storm never pressed the limit"

rejected=$(t_event_count storm rejected)
answered=$(t_event_count storm answered)
hung_up=$(t_event_count storm hangup_done)
t_log "client: $rejected refused (503), $answered answered, $hung_up hung up"
((rejected + answered == N)) || t_fail "$rejected + $answered outcomes for $N INVITEs"
((rejected > N / 2)) || t_fail "only $rejected of $N INVITEs refused"
((answered >= MAXP)) || t_fail "only $answered INVITEs answered, expected at least $MAXP"
((hung_up == answered)) || t_fail "$hung_up hang-ups for $answered answered calls"
bad_retry=$(grep '^ev=rejected ' "$T_DIR/storm.events" | grep -vc ' retry_after=5 ' || true)
((bad_retry == 0)) || t_fail "$bad_retry 503s without 'Retry-After: 5'"
t_log "ok: every 503 carried Retry-After: 5"

t_assert_metric cp 'imsplit_cp_invites_rejected_total{why="max_pending"}' -eq "$rejected"
t_assert_metric cp 'imsplit_cp_invites_rejected_total{why="max_sessions"}' -eq 0
t_assert_metric cp 'imsplit_cp_invites_rejected_total{why="no_live_worker"}' -eq 0
t_assert_metric cp 'imsplit_cp_sip_responses_total{direction="sent",code="503"}' -eq "$rejected"
t_assert_metric cp imsplit_cp_sessions_total -eq "$answered"

# Logged, but not once per INVITE: at most a line a second (plus the
# first), and the lines account for no more refusals than there were.
lines=$(t_count_log cp event=invite_rejected status=503 why=max_pending)
logged=$(grep 'event=invite_rejected status=503 why=max_pending' "$T_DIR/cp.log" |
    sed -n 's/.* suppressed=\([0-9]*\).*/\1/p' | awk '{ n += 1 + $1 } END { print n + 0 }')
max_lines=$(awk -v e="$elapsed" 'BEGIN { print int(e) + 2 }')
((lines >= 1 && lines <= max_lines)) || t_fail "$lines invite_rejected lines for $rejected refusals in ${elapsed}s (expected 1..$max_lines)"
((logged <= rejected && logged >= rejected - RATE * 2)) ||
    t_fail "the log lines account for $logged refusals, $rejected were made"
t_log "ok: $rejected refusals logged in $lines lines"

# Recovery: nothing pending any more, and a new INVITE is answered.
t_wait_metric cp imsplit_cp_sessions_pending -eq 0 10 || t_fail "set-ups still pending after the storm"
t_wait_metric cp imsplit_cp_sessions_active -eq 0 10 || t_fail "sessions left after the storm"
after_port=$(t_free_ports 1)
t_sipp_uac after "$FLOOD/client_storm.xml" -key se $SE -p "$after_port"
t_expect_sipp_ok after
(($(t_event_count after answered) == 1)) || t_fail "the INVITE after the storm was not answered"
t_log "ok: an INVITE after the storm was answered"
t_assert_metric cp 'imsplit_cp_invites_rejected_total{why="max_pending"}' -eq "$rejected"

rss_after=$(rss_kb)
t_log "CP VmRSS: before ${rss_before} kB, peak ${rss_peak} kB, after ${rss_after} kB"
t_stop uas KILL 2
t_finish
