#!/usr/bin/env bash
# Session timer expiry over UDP: both sides get the 408-Reason BYE on time
# and both directions are released on the 200s. See expiry_case.sh.
T_TRANSPORT=udp
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init expiry_udp
source "$(dirname "${BASH_SOURCE[0]}")/expiry_case.sh"
