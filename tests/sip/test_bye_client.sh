#!/usr/bin/env bash
# The IM Client hangs up: 200 to its BYE, a plain BYE (no Reason) to the
# controlling side, both directions released. While the session is up this
# also checks what the B2BUA put on the controlling leg (new Call-ID, From
# URI kept with a new tag, To and Request-URI kept, RFC 4028 headers, SDP
# pointing at a worker) and that imsplit-ctl sees the session.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init bye_client

SE=30
# The client hangs up this long after its ACK: the mid-call checks below
# must be done by then. Under valgrind each imsplit-ctl run alone takes
# about a second.
HOLD_MS=$((T_VALGRIND ? 10000 : 1500))
t_start_stack --session-expires $SE --min-se 2
t_sipp_uas uas ctrl_answer.xml
t_sipp_uac uac client_bye.xml -key se $SE -d $HOLD_MS

# Mid-call: the session is listed, with both SEs.
t_wait_metric cp imsplit_cp_sessions_active -eq 1 5 || t_fail "session never became active"
sleep 0.2
sessions=$(t_ctl sessions) || t_fail "imsplit-ctl sessions failed"
printf '%s\n' "$sessions"
rows=$(printf '%s\n' "$sessions" | awk 'NR > 1 && NF > 0' | wc -l)
[[ $rows == 1 ]] || t_fail "imsplit-ctl sessions shows $rows sessions, expected 1"
[[ $(printf '%s\n' "$sessions" | awk 'NR == 1 { print $1, $2, $NF }') == "SID CALL-ID CONTROLLING-SE" ]] ||
    t_fail "unexpected sessions header"
client_se_col=$(printf '%s\n' "$sessions" | awk 'NR == 2 { print $(NF - 1) }')
[[ $client_se_col == "$SE" ]] || t_fail "CLIENT-SE column is '$client_se_col', expected $SE"
json=$(t_ctl --json sessions) || t_fail "imsplit-ctl --json sessions failed"
python3 - "$json" "$SE" <<'PY' || t_fail "imsplit-ctl --json sessions: unexpected answer: $json"
import json, sys
d = json.loads(sys.argv[1])
s = d["query_result"]["sessions"]
assert d["reply_to"] == 1 and len(s) == 1, s
assert int(s[0]["client_se"]) == int(sys.argv[2]), s[0]
PY
workers=$(t_ctl workers) || t_fail "imsplit-ctl workers failed"
printf '%s\n' "$workers"

t_expect_sipp_ok uac uas

# B2BUA: the controlling leg is a new dialog, the identities are kept.
client_call_id=$(t_event_field uac answered call_id)
ctrl_call_id=$(t_event_field uas invite call_id)
[[ -n $ctrl_call_id && $ctrl_call_id != "$client_call_id" ]] ||
    t_fail "controlling leg Call-ID '$ctrl_call_id' must differ from the client's '$client_call_id'"
ctrl_from=$(t_event_field uas invite from)
[[ $ctrl_from == *"sip:alice@127.0.0.1"* ]] || t_fail "controlling From '$ctrl_from' lost the client's URI"
[[ $ctrl_from == *";tag="* && $ctrl_from != *"tag=$(t_event_field uac answered from_tag)"* ]] ||
    t_fail "controlling From '$ctrl_from' must carry a new tag"
# Headers a B2BUA passes on: caller preferences, asserted identity, and
# headers it does not interpret.
[[ $(t_event_field uas invite pai) == *"<sip:alice@example.net>"* ]] ||
    t_fail "P-Asserted-Identity not passed on: '$(t_event_field uas invite pai)'"
[[ $(t_event_field uas invite accept_contact) == *"+g.oma.sip-im"* ]] ||
    t_fail "Accept-Contact not passed on: '$(t_event_field uas invite accept_contact)'"
[[ $(t_event_field uas invite xtag) == *"imsplit-passthrough"* ]] ||
    t_fail "X-Operator-Tag not passed on: '$(t_event_field uas invite xtag)'"
t_log "ok: P-Asserted-Identity, Accept-Contact and an unknown header passed on"
[[ $(t_event_field uas invite to) == *"@127.0.0.1:$T_SIP_PORT>"* ]] ||
    t_fail "controlling To '$(t_event_field uas invite to)' is not the client's To URI"
[[ $(t_event_field uas invite ruri) == "sip:"*"@127.0.0.1:$T_SIP_PORT" ]] ||
    t_fail "controlling Request-URI '$(t_event_field uas invite ruri)' is not the client's"
[[ $(t_event_field uas invite se) == "$SE" ]] ||
    t_fail "controlling Session-Expires '$(t_event_field uas invite se)', expected '$SE' (no refresher)"
[[ $(t_event_field uas invite min_se) == 2 ]] ||
    t_fail "controlling Min-SE '$(t_event_field uas invite min_se)', expected 2"
[[ $(t_event_field uas invite supported) == *timer* ]] || t_fail "controlling INVITE lacks Supported: timer"
[[ $(t_event_field uac answered se) =~ ^$SE\;[[:space:]]*refresher=uac$ ]] ||
    t_fail "client 200 Session-Expires '$(t_event_field uac answered se)', expected '$SE;refresher=uac'"
[[ $(t_event_field uac answered require) == *timer* ]] ||
    t_fail "client 200 lacks Require: timer although the client refreshes"
t_log "ok: controlling INVITE: Call-ID $ctrl_call_id, From $ctrl_from"

# Both SDPs point at the same worker's MSRP listener.
ctrl_path=$(t_event_field uas invite path)
client_path=$(t_event_field uac answered path)
addr_of() { local p=${1#msrp://}; echo "${p%%/*}"; }
[[ $(addr_of "$ctrl_path") == "$(addr_of "$client_path")" ]] ||
    t_fail "paths on two different addresses: $client_path / $ctrl_path"
[[ $ctrl_path != "$client_path" ]] || t_fail "both legs got the same MSRP path $ctrl_path"
printf '%s\n' "$workers" | awk 'NR > 1 { print $4 }' | grep -qxF "$(addr_of "$client_path")" ||
    t_fail "MSRP address $(addr_of "$client_path") is not a worker's (imsplit-ctl workers)"
t_log "ok: client path $client_path, controlling path $ctrl_path"

t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 0
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="client"}' -eq 0
t_assert_metric cp 'imsplit_cp_bye_sent_total{leg="controlling"}' -eq 1
t_wait_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="client"}' -eq 1
t_assert_metric cp 'imsplit_cp_releases_sent_total{direction="controlling"}' -eq 1
t_wait_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1 5 || true
t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
t_assert_log cp -eq 1 event=release_sent direction=client reason=peer_bye
t_assert_log cp -eq 1 event=release_sent direction=controlling reason=bye_2xx

t_finish
