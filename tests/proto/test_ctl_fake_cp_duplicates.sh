#!/usr/bin/env bash
# A real worker against a fake CP (imsplit-ctl cp): commands sent twice with
# identical bytes are answered from the worker's result cache (the same
# answer, nothing done twice), an AllocateLeg for a known leg with another
# Call-ID is refused with CONFLICT, and a repeated ReleaseLeg still says OK
# (not NOT_FOUND) while the leg is released only once.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../lib/ctl_lib.sh"
t_init ctl_fake_cp_duplicates

read -r CTL_PORT UP_MPORT <<<"$(t_free_ports 2)" || t_fail "no free ports"
export SID=0x1234 HB_MS=200
t_ctl_fake_cp fcp "$CTL_PORT" "$T_PROTO_DIR/fake_cp_duplicates.ctl"
t_ctl_start_up up-1 "tcp://127.0.0.1:$CTL_PORT" "$UP_MPORT"
t_ctl_done fcp 30

# What the worker answered, as the fake CP saw it.
t_ctl_check fcp 'len(outs("allocate_leg")) == 3 and len(ins("allocate_leg_result")) == 3' \
    "three AllocateLegResults for two AllocateLegs and one resend"
t_ctl_check fcp '[b(e)["path"] for e in ins("allocate_leg_result")][0] == [b(e)["path"] for e in ins("allocate_leg_result")][1] != ""' \
    "the duplicate AllocateLeg got the first path back"
t_ctl_check fcp '[e["reply_to"] for e in ins("allocate_leg_result")] == [outs("allocate_leg")[0]["seq"]] * 2 + [outs("allocate_leg")[2]["seq"]]' \
    "results name the commands they answer"
t_ctl_check fcp '[b(e)["status"] for e in ins("release_leg_result")] == ["STATUS_OK", "STATUS_OK"]' \
    "both ReleaseLegResults say OK"

t_assert_metric up-1 imsplit_up_legs_active -eq 0
t_assert_metric up-1 imsplit_up_legs_allocated_total -eq 1
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up-1 'imsplit_up_legs_released_total{direction="controlling"}' -eq 0
t_assert_metric up-1 imsplit_up_commands_duplicate_total -eq 2
t_ctl_finish_up
