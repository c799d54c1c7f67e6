#!/usr/bin/env bash
# The IM Client refreshes its leg by re-INVITE. See client_refresh_case.sh.
REFRESH=reinvite
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init refresh_reinvite
source "$(dirname "${BASH_SOURCE[0]}")/client_refresh_case.sh"
