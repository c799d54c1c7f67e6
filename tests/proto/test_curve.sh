#!/usr/bin/env bash
# CURVE on the control channel: keys made by `imsplit-ctl keygen`, a CP that
# admits only the listed public keys (ZAP allow-list), a listed worker that
# registers and carries a session, a worker with an unlisted key that is
# refused, an imsplit-ctl without keys that gets no answer, and a CP that
# will not start with CURVE half configured (fail closed).
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
t_init curve

keys=$T_DIR/keys
mkdir -p "$keys/allow"
for k in cp up-1 rogue ctl; do
    "$T_CTL_BIN" keygen "$keys/$k" >/dev/null || t_fail "keygen $k failed"
done
[[ $(stat -c %a "$keys/cp.key") == 600 ]] || t_fail "secret key file is not mode 600"
cp "$keys/up-1.pub" "$keys/ctl.pub" "$keys/allow/"

# Half a configuration is refused at start.
rc=0
"$T_CP_BIN" --curve-secret "$keys/cp.key" >"$T_DIR/cp_half.log" 2>&1 || rc=$?
[[ $rc == 64 ]] || t_fail "CP with --curve-secret and no --curve-allow exited $rc, expected 64"
grep -q -- "--curve-allow" "$T_DIR/cp_half.log" || t_fail "no reason given for the refused start"
t_log "ok: CURVE without an allow-list is refused at start"

T_WORKERS=1
T_UP_ARGS=(--curve-server-key "$keys/cp.pub" --curve-secret "$keys/up-1.key")
t_start_stack --session-expires 30 --min-se 2 \
    --curve-secret "$keys/cp.key" --curve-allow "$keys/allow"
t_assert_log cp -eq 1 'event=curve_on'

# imsplit-ctl from here on speaks CURVE with a listed key (flags and the
# environment share names; the daemons above have theirs as flags).
export IMSPLIT_CURVE_SERVER_KEY=$keys/cp.pub IMSPLIT_CURVE_SECRET=$keys/ctl.key

# A worker whose key is not listed never gets through.
t_spawn rogue "$T_UP_BIN" --cp "$T_CTL_EP" --id up-rogue --msrp 127.0.0.1:0 \
    --curve-server-key "$keys/cp.pub" --curve-secret "$keys/rogue.key"
rogue_pub=$(grep -v '^#' "$keys/rogue.pub")
for _ in $(seq 1 40); do
    grep -qF "$rogue_pub" "$T_DIR/cp.log" && break
    sleep 0.1
done
grep 'event=zap_denied' "$T_DIR/cp.log" | grep -qF "$rogue_pub" ||
    t_fail "the unlisted worker key was not denied"
grep 'event=zap_denied' "$T_DIR/cp.log" | grep -q 'why=key_not_allowed' ||
    t_fail "zap_denied does not say why"
sleep 0.5
workers=$(t_ctl_workers) || t_fail "imsplit-ctl workers over CURVE failed"
printf '%s\n' "$workers"
[[ $(printf '%s\n' "$workers" | awk '{print $1}' | tr '\n' ' ') == "up-1 " ]] ||
    t_fail "the CP lists '$workers', expected only up-1"
grep -q 'event=registered' "$T_DIR/rogue.log" && t_fail "the refused worker registered"
t_assert_metric cp 'imsplit_cp_workers{state="live"}' -eq 1
t_stop rogue TERM 5
[[ ${T_RC_OF[rogue]} == 0 ]] || t_fail "refused worker exited ${T_RC_OF[rogue]}"
t_log "ok: a worker with an unlisted key is refused"

# Without keys imsplit-ctl is not answered.
rc=0
env -u IMSPLIT_CURVE_SERVER_KEY -u IMSPLIT_CURVE_SECRET \
    "$T_CTL_BIN" --ctl "$T_CTL_EP" --timeout 1000 workers >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || t_fail "imsplit-ctl without CURVE keys exited $rc, expected 2 (no answer)"
t_log "ok: a plain client gets no answer"

# The seed flow over the encrypted channel.
t_sipp_uas uas ctrl_answer.xml
t_sipp_uac uac client_bye.xml -key se 30 -d 500
t_expect_sipp_ok uac uas
t_wait_metric cp imsplit_cp_sessions_active -eq 0 5 || t_fail "session not ended"
t_assert_metric up 'imsplit_up_legs_released_total{direction="client"}' -eq 1
t_assert_metric up 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
grep -q 'event=zap_allowed' "$T_DIR/cp.log" || t_fail "no zap_allowed line"
t_finish
