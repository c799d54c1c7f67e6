#!/usr/bin/env bash
# A real worker against a fake CP that loses results: every command is
# resent after its result was dropped, and the resend gets the first answer
# from the worker's result cache. At the end no leg is left and each
# direction was released exactly once.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../lib/ctl_lib.sh"
t_init ctl_fake_cp_lossy

read -r CTL_PORT UP_MPORT <<<"$(t_free_ports 2)" || t_fail "no free ports"
export SID=0x4242 HB_MS=200
t_ctl_fake_cp fcp "$CTL_PORT" "$T_PROTO_DIR/fake_cp_lossy.ctl"
t_ctl_start_up up-1 "tcp://127.0.0.1:$CTL_PORT" "$UP_MPORT"
t_ctl_done fcp 30

t_ctl_check fcp 'len(drops("allocate_leg_result")) == 2 and len(drops("release_leg_result")) == 3' \
    "the fake CP dropped 2 allocate and 3 release results"
# The dropped and the delivered answer to a command are the same answer.
t_ctl_check fcp 'all(b(d) == b(e) for d in drops() for e in ins(d["body"]) if e["reply_to"] == d["reply_to"])' \
    "every resend was answered like the first send"
t_ctl_check fcp 'sorted(b(e)["status"] for e in ins("release_leg_result")) == ["STATUS_OK"] * 5' \
    "every ReleaseLegResult said OK, none NOT_FOUND"

t_assert_metric up-1 imsplit_up_legs_active -eq 0
t_assert_metric up-1 imsplit_up_legs_allocated_total -eq 2
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
t_assert_metric up-1 imsplit_up_commands_duplicate_total -eq 5
t_ctl_finish_up
