#!/usr/bin/env bash
# The CP's leg audit against a fake worker that answers with a wrong
# inventory (two pages): a leg the CP holds but the worker does not list
# ends its session (BYE to both sipps, both directions released), and a leg
# only the worker lists is released with reason RELEASE_AUDIT. A result of
# another kind that names the first Audit's seq is refused and leaves that
# audit to its inventory.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../lib/ctl_lib.sh"
t_init ctl_audit

SE=60
t_ctl_start_cp --session-expires $SE --min-se 2 --audit-ms 500 \
    --command-timeout-ms 300
read -r MSRP_PORT <<<"$(t_free_ports 1)" || t_fail "no free port"
export MSRP_PORT
t_ctl_fake_worker fw fake-1 "$T_PROTO_DIR/fake_worker_audit.ctl"
t_wait_metric cp 'imsplit_cp_workers{state="live"}' -eq 1 10 ||
    t_fail "the fake worker did not become live"

# Both sides wait for the CP's BYE: nobody hangs up by themselves.
t_sipp_uas uas ctrl_answer.xml
t_sipp_uac uac client_wait_bye.xml -key se $SE
t_expect_sipp_ok uac uas
t_ctl_done fw 40

t_ctl_check fw 'any(b(e)["session_id"] == 0xdead and b(e)["reason"] == "RELEASE_AUDIT" for e in ins("release_leg"))' \
    "the leg only the worker had was released for the audit"
t_ctl_check fw 'len([e for e in ins("release_leg") if b(e)["session_id"] == 0xdead]) == 1' \
    "released once"
t_ctl_check fw 'sorted(b(e)["direction"] for e in ins("release_leg") if b(e)["session_id"] == b(ins("allocate_leg")[0])["session_id"]) == ["DIRECTION_CLIENT", "DIRECTION_CONTROLLING"]' \
    "both legs of the audited session were released"
t_assert_log cp -ge 1 event=audit_mismatch kind=cp_only
t_assert_log cp -ge 1 event=audit_mismatch kind=worker_only
t_assert_log cp -eq 1 event=protocol_error kind=bad_field why=answers_audit
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq 1
t_finish
