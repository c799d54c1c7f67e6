#!/usr/bin/env bash
# The IM Client refreshes its leg by UPDATE. See client_refresh_case.sh.
REFRESH=update
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init refresh_update
source "$(dirname "${BASH_SOURCE[0]}")/client_refresh_case.sh"
