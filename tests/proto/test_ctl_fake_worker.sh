#!/usr/bin/env bash
# The real CP with a fake worker (imsplit-ctl worker) as its only worker and
# sipp on both SIP sides: the fake worker serves one session and loses the
# first ReleaseLeg of each direction. The CP must resend the identical
# command (same seq, same bytes), stop once it is answered, and be left
# with no session and no pending release.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../lib/ctl_lib.sh"
t_init ctl_fake_worker

SE=30
t_ctl_start_cp --session-expires $SE --min-se 2 --command-timeout-ms 300 \
    --command-tries 5
read -r MSRP_PORT <<<"$(t_free_ports 1)" || t_fail "no free port"
export MSRP_PORT
t_ctl_fake_worker fw fake-1 "$T_PROTO_DIR/fake_worker_lossy.ctl"
t_wait_metric cp 'imsplit_cp_workers{state="live"}' -eq 1 10 ||
    t_fail "the fake worker did not become live"

t_sipp_uas uas ctrl_answer.xml
t_sipp_uac uac client_bye.xml -key se $SE -d 1000
t_expect_sipp_ok uac uas
t_ctl_done fw 40

# The resent ReleaseLegs are the dropped ones, byte for byte as far as the
# decoded envelope shows (same seq, same reason and cause).
t_ctl_check fw 'len(drops("release_leg")) == 2' "one ReleaseLeg per direction was lost"
t_ctl_check fw 'all(sum(1 for e in ins("release_leg") if e == d) == 2 for d in drops("release_leg"))' \
    "each lost ReleaseLeg came again, identical (same seq)"
t_ctl_check fw 'len(ins("release_leg")) == 4' "no third ReleaseLeg for either leg"
t_ctl_check fw 'sorted(b(e)["direction"] for e in drops("release_leg")) == ["DIRECTION_CLIENT", "DIRECTION_CONTROLLING"]' \
    "both directions were released"
t_ctl_check fw 'len(ins("allocate_leg")) == 2 and len(ins("connect_leg")) == 2' \
    "two AllocateLegs and two ConnectLegs, none repeated"

t_wait_metric cp imsplit_cp_releases_pending -eq 0 5 || t_fail "releases still pending"
t_assert_metric cp imsplit_cp_releases_pending -eq 0
t_assert_metric cp imsplit_cp_sessions_active -eq 0
rows=$(t_ctl_session_rows) || t_fail "imsplit-ctl sessions failed"
[[ $rows == 0 ]] || t_fail "imsplit-ctl sessions lists $rows sessions, expected none"
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_finish
