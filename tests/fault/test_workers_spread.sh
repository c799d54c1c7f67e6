#!/usr/bin/env bash
# Scale-out: 40 concurrent sessions over 4 workers, 10 +- 2 on each (see
# spread_case.sh).
T_WORKERS=4
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init workers_spread
source "$(dirname "${BASH_SOURCE[0]}")/spread_case.sh"
