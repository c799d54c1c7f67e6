#!/usr/bin/env bash
# The CP as refresher of the controlling leg, by UPDATE. See
# cp_refresher_case.sh.
REFRESH=update
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init cp_refresher
source "$(dirname "${BASH_SOURCE[0]}")/cp_refresher_case.sh"
