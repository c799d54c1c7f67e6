#!/usr/bin/env bash
# Session timer expiry over TCP (client over TCP, next hop ;transport=tcp).
# See expiry_case.sh.
T_TRANSPORT=tcp
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init expiry_tcp
source "$(dirname "${BASH_SOURCE[0]}")/expiry_case.sh"
