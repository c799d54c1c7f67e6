#!/usr/bin/env bash
# Scale-out: 40 concurrent sessions over 2 workers, 20 +- 2 on each (see
# spread_case.sh).
T_WORKERS=2
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init workers_spread_2
source "$(dirname "${BASH_SOURCE[0]}")/spread_case.sh"
