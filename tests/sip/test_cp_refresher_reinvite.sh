#!/usr/bin/env bash
# The CP as refresher of the controlling leg, by re-INVITE (the peer does
# not allow UPDATE). See cp_refresher_case.sh.
REFRESH=reinvite
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init cp_refresher_reinvite
source "$(dirname "${BASH_SOURCE[0]}")/cp_refresher_case.sh"
