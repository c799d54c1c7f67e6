#!/usr/bin/env bash
# 1000 concurrent timed sessions that nobody refreshes, set up at a high
# rate so that all of them are up before the first expires; then an expiry
# storm: every session must get both BYEs (with the 408 Reason, checked by
# both sipps on every call), every direction must be released, and nothing
# may be left on the workers. Prints the setup rate, the expiry lateness
# and how long the release storm took.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init many_sessions

N=${IMSPLIT_MANY_SESSIONS:-1000}
RATE=${IMSPLIT_MANY_RATE:-400}
# Expiry at SE - SE/3 = 8 s after each 200; setup takes N/RATE = 2.5 s.
SE=12
EXPECT_MS=$((SE * 1000 - SE * 1000 / 3))
T_SIPP_TRACE_MSG=0

t_start_stack --session-expires $SE --min-se 2 --log-level info
t_sipp_uas uas ctrl_expiry.xml -key se $SE -m "$N"
t_sipp_uac uac client_expiry.xml -key se $SE -m "$N" -l $((N + N / 5)) \
    -r "$RATE" -rp 1000

# Concurrency as the CP counts it (INVITEs in progress count too); the
# figures below check it again from the client's 200s and BYEs.
peak=0
for ((i = 0; i < 200; i++)); do
    v=$(t_metric cp imsplit_cp_sessions_active)
    [[ $v != missing ]] && ((v > peak)) && peak=$v
    ((peak >= N)) && break
    t_check_daemons
    sleep 0.05
done
((peak >= N)) || t_fail "only $peak sessions were active at once, expected $N"
t_log "ok: $peak sessions active at once"

t_sipp_wait uac 90
t_sipp_wait uas 30
t_expect_sipp_ok uac uas

t_assert_metric cp imsplit_cp_sessions_total -eq "$N"
t_assert_metric cp imsplit_cp_session_timer_expired_total -eq "$N"
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq "$N"
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq "$N"
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq "$N" 10 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq "$N"
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq "$N"
t_wait_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq "$N" 10 || true
t_assert_metric up imsplit_up_legs_allocated_total -eq $((2 * N))
t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq "$N"
t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq "$N"
for name in "${T_UP_NAMES[@]}"; do
    t_log "$name allocated $(t_metric "$name" imsplit_up_legs_allocated_total) legs"
done
t_assert_log cp -eq "$N" event=release_sent direction=client reason=bye_2xx
t_assert_log cp -eq "$N" event=release_sent direction=controlling reason=bye_2xx

# Figures. Lateness: per call, (BYE - 200) on the client minus the
# expected SE - SE/3, in ms.
t_log_times cp event=release_sent >"$T_DIR/release_times"
python3 - "$T_DIR/uac.events" "$T_DIR/release_times" "$N" "$EXPECT_MS" <<'PY' | tee "$T_DIR/figures"
import re, sys
events, releases, n, expect = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
answered, bye = {}, {}
for line in open(events, encoding="utf-8", errors="replace"):
    m = re.match(r"ev=(answered|bye) call=(\d+) .*\s(\d+\.\d+)\s*$", line)
    if m:
        (answered if m.group(1) == "answered" else bye)[m.group(2)] = float(m.group(3))
if len(answered) != n or len(bye) != n:
    sys.exit("expected %d answered/bye events, got %d/%d" % (n, len(answered), len(bye)))
t = sorted(answered.values())
setup_s = t[-1] - t[0]
late = sorted((bye[c] - answered[c]) * 1000 - expect for c in answered)
pct = lambda p: late[min(len(late) - 1, int(p * len(late)))]
rel = sorted(float(x) for x in open(releases) if x.strip())
# Established sessions at once, from the client's view: +1 at each 200,
# -1 at each BYE.
edges = sorted([(v, 1) for v in answered.values()] + [(v, -1) for v in bye.values()])
cur = peak = 0
for _, d in edges:
    cur += d
    peak = max(peak, cur)
print("sessions:                %d, %d established at once" % (n, peak))
print("setup rate achieved:     %.0f sessions/s (%d answered in %.3f s)" % ((n - 1) / setup_s if setup_s > 0 else 0, n, setup_s))
print("expiry lateness (ms):    min %.1f  p50 %.1f  p99 %.1f  max %.1f" % (late[0], pct(0.5), pct(0.99), late[-1]))
print("releases sent:           %d, first to last %.3f s" % (len(rel), rel[-1] - rel[0] if rel else -1))
print("last BYE to last release: %.3f s" % (rel[-1] - max(bye.values()) if rel else -1))
if peak < n:
    sys.exit("only %d of %d sessions were established at the same time "
             "(setup took %.3f s, expiry is %.0f ms after each 200)" % (peak, n, setup_s, expect))
# The storm must stay on time: every BYE within 1 s of its due time.
if late[0] < -100 or late[-1] > 1000:
    sys.exit("expiry lateness out of bounds: min %.1f max %.1f ms" % (late[0], late[-1]))
PY

t_finish
