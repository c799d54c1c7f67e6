#!/usr/bin/env bash
# The seed flow across network namespaces: CP, workers and endpoints on
# three different network stacks, as they would be on three hosts.
#
#   ims-cp-PID   bridge br0 10.99.0.1/24: imsplit-cp (SIP, control
#                channel, metrics), both sipps, the four MSRP peers,
#                imsplit-ctl
#   ims-w1-PID   eth0 10.99.0.2/24: imsplit-up up-1 (MSRP and metrics on
#                10.99.0.2), a veth into br0
#   ims-w2-PID   eth0 10.99.0.3/24: imsplit-up up-2 likewise
#
# Two sessions at once (sipp -m 2, per-call MSRP paths from -inf files),
# so the CP places one on each worker. Per session the client MSRP peer
# connects to its worker's client-leg path (a 10.99.0.x address the
# worker wrote from its own listener), the worker connects out to the
# controlling peer at 10.99.0.1, and both peers send and verify messages
# through it. Nobody refreshes: at SE - SE/3 the CP sends BYE to both
# sides of both sessions (Reason 408), releases each direction on its
# BYE's 200, each worker closes its legs' connections (the peers wait for
# it), and nothing may be left. The namespaces are deleted on exit, pass or
# fail. Skipped (exit 77) if this host does not allow `ip netns add`.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/msrp_lib.sh"
t_init netns
m_init
command -v ip >/dev/null || { t_log "SKIP: no ip(8)"; exit 77; }

NS_CP=ims-cp-$$ NS_W1=ims-w1-$$ NS_W2=ims-w2-$$
t_netns_create "$NS_CP" "$NS_W1" "$NS_W2" || exit 77
ip -n "$NS_CP" link add br0 type bridge || t_fail "cannot create a bridge in $NS_CP"
ip -n "$NS_CP" addr add 10.99.0.1/24 dev br0
ip -n "$NS_CP" link set br0 up
k=1
for ns in "$NS_W1" "$NS_W2"; do
    ip -n "$NS_CP" link add "v$k" type veth peer name eth0 netns "$ns" ||
        t_fail "cannot create a veth pair between $NS_CP and $ns"
    ip -n "$NS_CP" link set "v$k" master br0
    ip -n "$NS_CP" link set "v$k" up
    ip -n "$ns" addr add "10.99.0.$((k + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    k=$((k + 1))
done
# Reachable means a TCP connect to a closed port is refused (not lost).
reachable() { # NS ADDR
    ip netns exec "$1" python3 -c '
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect((sys.argv[1], 9))
except ConnectionRefusedError:
    pass
except OSError:
    sys.exit(1)
' "$2"
}
for ((i = 0; i < 50; i++)); do
    reachable "$NS_W1" 10.99.0.1 && reachable "$NS_W2" 10.99.0.1 &&
        reachable "$NS_CP" 10.99.0.2 && reachable "$NS_CP" 10.99.0.3 && break
    sleep 0.1
done
for pair in "$NS_W1 10.99.0.1" "$NS_W2 10.99.0.1" "$NS_CP 10.99.0.2" "$NS_CP 10.99.0.3"; do
    read -r ns addr <<<"$pair"
    reachable "$ns" "$addr" || t_fail "$addr is not reachable from $ns"
done
t_log "namespaces $NS_CP (10.99.0.1) $NS_W1 (10.99.0.2) $NS_W2 (10.99.0.3)"

T_NS=$NS_CP T_HOST=10.99.0.1
T_UP_NS=("$NS_W1" "$NS_W2") T_UP_HOST=(10.99.0.2 10.99.0.3)
SE=6
EXPECT_MS=4000
MIB=1048576
SEND=(--send 5 --size 100 --send 2 --size "$MIB" --chunk 65536)
EXPECT=(--expect 5 --expect-size 100 --expect 2 --expect-size "$MIB")
PEER_MS=20000

t_start_stack --session-expires $SE --min-se 2

# Each worker's MSRP listener is in its own namespace, on its address.
for i in 1 2; do
    addr=$(t_ctl_worker "up-$i" msrp)
    [[ $addr == "${T_UP_HOST[$((i - 1))]}:"* ]] ||
        t_fail "up-$i registered MSRP address $addr, expected ${T_UP_HOST[$((i - 1))]}:PORT"
    t_wait_listen "${addr##*:}" tcp 2 "${T_UP_NS[$((i - 1))]}" ||
        t_fail "up-$i does not listen on $addr in ${T_UP_NS[$((i - 1))]}"
done
t_ctl workers

# Per-call MSRP paths: call k of the client offers cpath k, call k of the
# controlling side answers xpath k, where xpeer k listens.
ports=$(t_free_ports 2)
read -r xport1 xport2 <<<"$ports"
tag=$(printf '%04x%04x' $RANDOM $RANDOM)
cpath=("msrp://$T_HOST:9/cli1$tag;tcp" "msrp://$T_HOST:9/cli2$tag;tcp")
xpath=("msrp://$T_HOST:$xport1/ctl1$tag;tcp" "msrp://$T_HOST:$xport2/ctl2$tag;tcp")
# ';' separates fields in a sipp -inf file, so the ";tcp" of each path is
# put back in the scenario.
printf 'SEQUENTIAL\n%s;\n%s;\n' "${cpath[@]%;tcp}" >"$T_DIR/cpaths.csv"
printf 'SEQUENTIAL\n%s;\n%s;\n' "${xpath[@]%;tcp}" >"$T_DIR/xpaths.csv"
sed 's/\[cpath\]/[field0];tcp/g' "$T_SCEN_DIR/client_msrp.xml" >"$T_DIR/client_msrp_inf.xml"
sed 's/\[xpath\]/[field0];tcp/g' "$T_SCEN_DIR/ctrl_msrp.xml" >"$T_DIR/ctrl_msrp_inf.xml"

for k in 1 2; do
    t_spawn "xpeer$k" "$T_PEER_BIN" --listen "$T_HOST:$(eval echo "\$xport$k")" \
        --local-path "${xpath[$((k - 1))]}" "${SEND[@]}" "${EXPECT[@]}" \
        --send-after-recv --wait-close --timeout-ms $PEER_MS
    t_wait_listen "$(eval echo "\$xport$k")" tcp 5 || t_fail "xpeer$k does not listen"
done
t_sipp_uas uas "$T_DIR/ctrl_msrp_inf.xml" -key se $SE -inf "$T_DIR/xpaths.csv" -m 2
t_sipp_uac uac "$T_DIR/client_msrp_inf.xml" -key se $SE -inf "$T_DIR/cpaths.csv" \
    -m 2 -l 2 -r 10 -rp 1000

# The client peers connect once the 200s have told where.
for ((i = 0; i < 200; i++)); do
    (($(t_event_count uac answered) == 2)) && break
    t_check_daemons
    t_alive "${T_PID_OF[uac]}" || break
    sleep 0.05
done
(($(t_event_count uac answered) == 2)) || t_fail "the client did not get two 200s"
declare -A seen=()
for k in 1 2; do
    wpath=$(grep "^ev=answered call=$k " "$T_DIR/uac.events" | sed -n 's/.* path=\(msrp:[^ ]*\) .*/\1/p')
    w=$(t_worker_of_path "$wpath")
    [[ -n $w ]] || t_fail "call $k: path $wpath is on no worker's address"
    seen[$w]=1
    t_log "call $k: client leg $wpath on $w"
    t_spawn "cpeer$k" "$T_PEER_BIN" --connect "$wpath" --local-path "${cpath[$((k - 1))]}" \
        "${SEND[@]}" "${EXPECT[@]}" --wait-close --timeout-ms $PEER_MS
done
((${#seen[@]} == 2)) || t_fail "both sessions were placed on ${!seen[*]}, expected one on each worker"
t_log "ok: one session on each worker"
for name in up-1 up-2; do
    t_wait_metric "$name" imsplit_up_sockets_open -eq 2 5 ||
        t_fail "$name does not hold both MSRP connections of its session"
done

for p in cpeer1 cpeer2; do m_peer_wait "$p" $((PEER_MS / 1000 + 5)); done
for p in xpeer1 xpeer2; do m_peer_wait "$p" 10; done
t_expect_sipp_ok uac uas

# Every message crossed a worker intact, both ways, and each worker (not
# the peer) closed the connection at the end.
for p in cpeer1 cpeer2 xpeer1 xpeer2; do
    m_expect $p sent -eq 7
    m_expect $p received -eq 7
    m_expect $p bad -eq 0
    m_expect $p resp_err -eq 0
    m_expect $p path_err -eq 0
    m_expect $p proto_err -eq 0
    m_expect $p closed_by_peer -eq 1
    [[ ${T_RC_OF[$p]} == 0 ]] || t_fail "peer $p exited ${T_RC_OF[$p]}"
done

# The expiry: both sides of both sessions got the timer BYE on time.
python3 - "$T_DIR/uac.events" "$T_DIR/uas.events" "$EXPECT_MS" <<'PY' || t_fail "timer BYEs: see above"
import re, sys
uac, uas, expect = sys.argv[1], sys.argv[2], float(sys.argv[3])
def ev(path, name):
    out = {}
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"ev=%s call=(\d+) (.*)\s(\d+\.\d+)\s*$" % name, line)
        if m:
            out[m.group(1)] = (float(m.group(3)), m.group(2))
    return out
ok = True
for side, path, start in (("client", uac, "answered"), ("controlling", uas, "acked")):
    s, b = ev(path, start), ev(path, "bye")
    for c in sorted(s):
        if c not in b:
            print("%s call %s: no BYE" % (side, c)); ok = False; continue
        late = (b[c][0] - s[c][0]) * 1000 - expect
        reason_ok = "cause=408" in b[c][1]
        print("%-12s call %s: BYE %.1f ms after the due time, Reason %s" % (side, c, late, "408" if reason_ok else "missing"))
        ok = ok and reason_ok and -100 <= late <= 200
sys.exit(0 if ok else 1)
PY
t_assert_metric cp imsplit_cp_session_timer_expired_total -eq 2
t_assert_log cp -eq 2 event=release_sent direction=client reason=bye_2xx
t_assert_log cp -eq 2 event=release_sent direction=controlling reason=bye_2xx
t_assert_log cp -eq 4 event=leg_usage status=ok
for name in up-1 up-2; do
    t_wait_metric "$name" 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1 5 || true
    t_assert_metric "$name" imsplit_up_legs_allocated_total -eq 2
    t_assert_metric "$name" 'imsplit_up_legs_released_total{direction="client"}' -eq 1
    t_assert_metric "$name" 'imsplit_up_legs_released_total{direction="controlling"}' -eq 1
    t_assert_metric "$name" imsplit_up_msrp_bytes_relayed_total -gt $((4 * MIB))
done

t_finish
